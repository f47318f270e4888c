"""Prometheus metrics read from the database at scrape time, so every process agrees."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from app.db import new_session
from app.models import Item, ModelVersion, Outbox, Queue, TrainingExample
from app.trust.drift import DRIFT_LEVELS, drift_section


class QueueCollector:
    """Queue depth by status, feedback backlog and training examples, per queue."""

    def __init__(self, engine):
        self.engine = engine

    def collect(self):
        items = GaugeMetricFamily(
            "loupe_items", "Items by queue and status", labels=["queue", "status"]
        )
        examples = GaugeMetricFamily(
            "loupe_training_examples", "Training examples", labels=["queue"]
        )
        backlog = GaugeMetricFamily(
            "loupe_outbox_pending", "Outbox rows not yet processed", labels=["queue"]
        )
        parked = GaugeMetricFamily(
            "loupe_outbox_parked",
            "Outbox rows parked after their job failed too often (see /admin/jobs)",
            labels=["queue"],
        )
        versions = GaugeMetricFamily("loupe_model_versions", "Model versions", labels=["queue"])
        drift_psi = GaugeMetricFamily(
            "loupe_queue_drift_psi",
            "Population stability index of a feature over the queue's recent items against "
            "the active model's training data",
            labels=["queue", "feature"],
        )
        drift_level = GaugeMetricFamily(
            "loupe_queue_drift_level",
            "Drift status of the queue's recent inputs: 0 ok, 1 warning, 2 alarm",
            labels=["queue"],
        )
        with new_session(self.engine) as s:
            names = dict(s.execute(select(Queue.id, Queue.name)).all())
            for qid, status, n in s.execute(
                select(Item.queue_id, Item.status, func.count()).group_by(
                    Item.queue_id, Item.status
                )
            ):
                items.add_metric([names.get(qid, str(qid)), status], n)
            for qid, n in s.execute(
                select(TrainingExample.queue_id, func.count()).group_by(TrainingExample.queue_id)
            ):
                examples.add_metric([names.get(qid, str(qid))], n)
            for qid, n in s.execute(
                select(Outbox.queue_id, func.count())
                .where(Outbox.processed_at.is_(None))
                .group_by(Outbox.queue_id)
            ):
                backlog.add_metric([names.get(qid, str(qid))], n)
            for qid, n in s.execute(
                select(Outbox.queue_id, func.count())
                .where(Outbox.parked_at.is_not(None))
                .group_by(Outbox.queue_id)
            ):
                parked.add_metric([names.get(qid, str(qid))], n)
            for qid, n in s.execute(
                select(ModelVersion.queue_id, func.count()).group_by(ModelVersion.queue_id)
            ):
                versions.add_metric([names.get(qid, str(qid))], n)
            active = set(s.scalars(select(ModelVersion.queue_id).where(ModelVersion.active)))
            for queue in s.scalars(select(Queue).where(Queue.id.in_(active))):
                drift = drift_section(session=s, queue=queue)
                if drift["status"] in DRIFT_LEVELS:
                    drift_level.add_metric([queue.name], DRIFT_LEVELS[drift["status"]])
                for f in drift["features"]:
                    drift_psi.add_metric([queue.name, f["name"]], f["psi"])
        yield from (items, examples, backlog, parked, versions, drift_psi, drift_level)
