"""Prometheus metrics read from the database at scrape time, so every process agrees."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlmodel import col

from app.db import new_session
from app.learning.drift import DRIFT_LEVELS, drift_section
from app.models import Item, ModelVersion, Outbox, Queue, TrainingExample
from app.queues.events import pause_state
from app.queues.sla import sla_breaches
from app.trust.alarms import alarms_json
from app.trust.precision import headline


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
            names = dict(s.execute(select(col(Queue.id), col(Queue.name))).all())
            for qid, status, n in s.execute(
                select(col(Item.queue_id), col(Item.status), func.count()).group_by(
                    col(Item.queue_id), col(Item.status)
                )
            ):
                items.add_metric([names.get(qid, str(qid)), status], n)
            for qid, n in s.execute(
                select(col(TrainingExample.queue_id), func.count()).group_by(
                    col(TrainingExample.queue_id)
                )
            ):
                examples.add_metric([names.get(qid, str(qid))], n)
            for qid, n in s.execute(
                select(col(Outbox.queue_id), func.count())
                .where(col(Outbox.processed_at).is_(None))
                .group_by(col(Outbox.queue_id))
            ):
                backlog.add_metric([names.get(qid, str(qid))], n)
            for qid, n in s.execute(
                select(col(Outbox.queue_id), func.count())
                .where(col(Outbox.parked_at).is_not(None))
                .group_by(col(Outbox.queue_id))
            ):
                parked.add_metric([names.get(qid, str(qid))], n)
            for qid, n in s.execute(
                select(col(ModelVersion.queue_id), func.count()).group_by(
                    col(ModelVersion.queue_id)
                )
            ):
                versions.add_metric([names.get(qid, str(qid))], n)
            active = set(
                s.scalars(select(col(ModelVersion.queue_id)).where(col(ModelVersion.active)))
            )
            for queue in s.scalars(select(Queue).where(col(Queue.id).in_(active))):
                drift = drift_section(session=s, queue=queue)
                if drift["status"] in DRIFT_LEVELS:
                    drift_level.add_metric([queue.name], DRIFT_LEVELS[drift["status"]])
                for f in drift["features"]:
                    drift_psi.add_metric([queue.name, f["name"]], f["psi"])
            trust = _trust_metrics(s)
            sla = _sla_metrics(s)
        yield from (items, examples, backlog, parked, versions, drift_psi, drift_level)
        yield from (*trust, *sla)


def _sla_metrics(session) -> list[GaugeMetricFamily]:
    """Service-level breaches of the queues that have an SLA (app.queues.sla)."""
    breaches = GaugeMetricFamily(
        "loupe_sla_breaches",
        "Items past their service-level deadline (arrival + sla_hours): decided_late were "
        "decided after it, waiting_late are still undecided",
        labels=["queue", "kind"],
    )
    nearing = GaugeMetricFamily(
        "loupe_sla_nearing",
        "Undecided items past the nearing share of their service level (claimed first)",
        labels=["queue"],
    )
    for row in sla_breaches(session=session):
        breaches.add_metric([row["queue"], "decided_late"], row["decided_late"])
        breaches.add_metric([row["queue"], "waiting_late"], row["waiting_late"])
        nearing.add_metric([row["queue"]], row["nearing"])
    return [breaches, nearing]


def _trust_metrics(session) -> list[GaugeMetricFamily]:
    """Per queue: open alarms by kind, auto-accept paused, and the audited precision of the
    active model's auto-accepted answers (estimate, one-sided lower bound, answers)."""
    alarm = GaugeMetricFamily(
        "loupe_queue_alarm", "Open alarms (1) by queue and kind", labels=["queue", "kind"]
    )
    paused = GaugeMetricFamily(
        "loupe_auto_accept_paused",
        "Auto-accept paused by an alarm (1) or not (0)",
        labels=["queue"],
    )
    estimate = GaugeMetricFamily(
        "loupe_auto_accept_precision",
        "Audited precision of auto-accepted answers (stratified estimate)",
        labels=["queue"],
    )
    lower = GaugeMetricFamily(
        "loupe_auto_accept_precision_lower",
        "One-sided lower bound of the audited precision, at the queue's confidence",
        labels=["queue"],
    )
    audits = GaugeMetricFamily(
        "loupe_auto_accept_audits",
        "Audited answers behind the precision estimate",
        labels=["queue"],
    )
    for queue in session.scalars(select(Queue).order_by(col(Queue.id))):
        for open_alarm in alarms_json(session=session, queue=queue):
            alarm.add_metric([queue.name, open_alarm["kind"]], 1)
        paused.add_metric([queue.name], int(pause_state(session=session, queue=queue) is not None))
        now = headline(session=session, queue=queue)
        audits.add_metric([queue.name], now["n"])
        if now["estimate"] is not None:
            estimate.add_metric([queue.name], now["estimate"])
            lower.add_metric([queue.name], now["lower"])
    return [alarm, paused, estimate, lower, audits]
