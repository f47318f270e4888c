"""A worker killed in the middle of a training run: nothing half-written, the active model
stays, the run is marked failed, and the queue can be retrained again."""

import os
import signal
import subprocess
import time
from datetime import timedelta

from sqlalchemy import insert, select

from app.db import session_scope
from app.demo.claims import generate_claims
from app.learning.retraining import DEAD_RUN_AFTER
from app.learning.training import train_model_version
from app.models import (
    Item,
    Label,
    ModelVersion,
    TrainingExample,
    TrainingRun,
    TrainingSnapshot,
    utcnow,
)
from tests.conftest import wait_for
from tests.learning.test_training import _labelled


def _bulk_labelled(engine, queue_id: int, n: int) -> None:
    """n human-labelled examples written straight to the tables (setup, not under test)."""
    claims = generate_claims(n, seed=21)
    now = utcnow()
    with session_scope(engine) as s:
        s.execute(
            insert(Item),
            [
                {
                    "queue_id": queue_id,
                    "external_id": f"bulk-{i}",
                    "payload": c["payload"],
                    "status": "done",
                    "priority": 0,
                    "created_at": now,
                }
                for i, c in enumerate(claims)
            ],
        )
        items = dict(
            s.execute(
                select(Item.external_id, Item.id).where(Item.external_id.like("bulk-%"))
            ).all()
        )
        s.execute(
            insert(Label),
            [
                {
                    "item_id": items[f"bulk-{i}"],
                    "queue_id": queue_id,
                    "value": c["label"],
                    "source": "human",
                    "reviewers": ["bulk"],
                    "decided_at": now + timedelta(seconds=i),
                }
                for i, c in enumerate(claims)
            ],
        )
        labels = dict(
            s.execute(select(Label.item_id, Label.id).where(Label.reviewers.is_not(None))).all()
        )
        s.execute(
            insert(TrainingExample),
            [
                {
                    "queue_id": queue_id,
                    "label_id": labels[items[f"bulk-{i}"]],
                    "item_id": items[f"bulk-{i}"],
                    "features": c["payload"],
                    "target": c["label"],
                    "source": "human",
                    "decided_at": now + timedelta(seconds=i),
                    "created_at": now,
                }
                for i, c in enumerate(claims)
            ],
        )


def test_worker_killed_mid_training(client, make, engine, db, worker_process, monkeypatch):
    from workers.maintenance import run_maintenance

    monkeypatch.setenv("LOUPE_RETRAIN_LOCK_SECONDS", "3")
    queue_id = make.queue(audit_rate=0, retrain_after=0)
    lead = make.user("lead", queues=["claims"])
    make.user("reviewer", queues=["claims"])
    _labelled(engine, 100)
    with session_scope(engine) as s:
        v1 = train_model_version(db=s, queue_id=queue_id).version.version
    _bulk_labelled(engine, queue_id, 15_000)  # a run long enough to be killed in

    worker = worker_process()
    assert (
        client.post("/api/v1/queues/claims/models/retrain", headers=lead["headers"]).status_code
        == 202
    )
    wait_for(
        lambda: db.count(TrainingRun, TrainingRun.status == "running") == 1,
        interval=0.02,
        what="the run to start",
    )
    started = time.monotonic()
    # The worker and the work horse it forked for the job die together, as in a lost
    # machine or container.
    horses = subprocess.run(
        ["pgrep", "-P", str(worker.pid)], capture_output=True, text=True
    ).stdout.split()
    assert horses, "the job runs in a forked work horse"
    for pid in [worker.pid, *map(int, horses)]:
        os.kill(pid, signal.SIGKILL)
    worker.wait(timeout=10)

    # Nothing of the run was stored, and v1 still answers.
    assert db.count(ModelVersion) == 1 and db.count(TrainingSnapshot) == 1  # v1's
    assert db.scalar(select(ModelVersion.version).where(ModelVersion.active)) == v1
    assert db.count(TrainingExample, TrainingExample.used_by_version_id.is_(None)) == 15_000
    # Once its lock has lapsed, maintenance says what happened to the run.
    wait_for(lambda: run_maintenance()["abandoned_runs"] == 1, interval=0.5, what="abandoned run")
    run = db.scalar(select(TrainingRun))
    assert run.status == "failed" and "worker stopped" in run.message

    # RQ still lists the dead job as started; a new request replaces it, and a new worker
    # trains.
    time.sleep(max(0.0, DEAD_RUN_AFTER.total_seconds() - (time.monotonic() - started)))
    assert (
        client.post("/api/v1/queues/claims/models/retrain", headers=lead["headers"]).status_code
        == 202
    )
    worker_process()
    wait_for(
        lambda: db.count(TrainingRun, TrainingRun.status == "trained") == 1,
        timeout=120,
        what="a run by the new worker",
    )
    assert db.count(ModelVersion) == 2
    assert db.count(TrainingExample, TrainingExample.used_by_version_id.is_(None)) == 0
