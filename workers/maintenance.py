"""What every worker does every few seconds besides its jobs (LOUPE_MAINTENANCE_INTERVAL)."""

from __future__ import annotations

from sqlalchemy import select

from app.db import session_scope
from app.learning.job_queues import job_engine, job_redis
from app.learning.outbox import relay_outbox
from app.learning.registry import fail_abandoned_runs, schedule_due
from app.learning.retraining import enqueue_retrain, retrain_lock_key
from app.models import Queue, id_of
from app.queues.service import policy_of
from app.review.service import expire_leases


def run_maintenance() -> dict:
    """Relays the outbox, returns items whose lease ran out, closes runs whose worker died
    and starts the scheduled retraining runs that are due."""
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
        "relayed": relayed,
        "expired": expired,
        "abandoned_runs": abandoned,
        "scheduled": len(scheduled),
    }
