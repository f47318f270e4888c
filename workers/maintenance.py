"""What every worker does every few seconds besides its jobs (LOUPE_MAINTENANCE_INTERVAL)."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from app.db import session_scope
from app.learning.job_queues import job_engine, job_redis
from app.learning.outbox import relay_outbox
from app.learning.registry import fail_abandoned_runs, schedule_due
from app.learning.retraining import enqueue_retrain, retrain_lock_key
from app.models import Queue, id_of
from app.queues.service import policy_of
from app.review.service import expire_leases
from app.settings import current_settings
from app.trust.alarms import check_queue

ALARM_CHECK_KEY = "loupe:alarm-check"


def run_maintenance() -> dict:
    """Relays the outbox, returns items whose lease ran out, closes runs whose worker died,
    starts the scheduled retraining runs that are due and runs the queues' alarm checks."""
    engine = job_engine()
    conn = job_redis()
    relayed = relay_outbox(engine, conn)
    with session_scope(engine) as session:
        expired = expire_leases(session=session)
        abandoned = fail_abandoned_runs(
            session=session, alive=lambda qid: bool(conn.exists(retrain_lock_key(qid)))
        )
    scheduled = []
    with session_scope(engine, write=False) as session:
        for queue in session.scalars(select(Queue)):
            every = policy_of(queue).retrain_every_hours
            if schedule_due(session=session, queue=queue, every_hours=every):
                scheduled.append(id_of(queue))
    for queue_id in scheduled:
        enqueue_retrain(conn, queue_id, reason="schedule")
    return {
        "alarms": _check_alarms(engine, conn),
        "relayed": relayed,
        "expired": expired,
        "abandoned_runs": abandoned,
        "scheduled": len(scheduled),
    }


def _check_alarms(engine, conn) -> int:
    """Runs every queue's alarm checks, at most once per LOUPE_ALARM_CHECK_INTERVAL across
    all workers (a Redis key decides who); returns the alarm events recorded."""
    every = current_settings().alarm_check_interval
    if every > 0 and not conn.set(ALARM_CHECK_KEY, 1, nx=True, px=int(every * 1000)):
        return 0
    with session_scope(engine, write=False) as session:
        queue_ids = list(session.scalars(select(col(Queue.id))))
    changes = 0
    for queue_id in queue_ids:
        # One short transaction per queue: a slow queue holds no lock on the others.
        with session_scope(engine) as session:
            queue = session.get(Queue, queue_id)
            if queue is not None:
                changes += len(check_queue(session=session, queue=queue))
    return changes
