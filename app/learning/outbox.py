"""Handing the outbox to RQ: the relay, and the job that turns a label into a training
example (and asks for a retraining once enough are new).

The rows themselves are written with the decision (app.learning.feedback.add_to_outbox);
anything Redis lost is handed over again by the relay, which every worker runs every few
seconds.
"""

from __future__ import annotations

import logging

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue as RQQueue
from sqlalchemy import update
from sqlmodel import col

from app.db import session_scope
from app.learning import feedback
from app.learning.job_queues import FEEDBACK_QUEUE, job_engine, job_redis
from app.learning.parking import sort_out
from app.learning.rescoring import enqueue_rescore
from app.learning.retraining import enqueue_retrain, retrain_backoff_key
from app.models import Outbox, Queue
from app.states import OutboxKind

log = logging.getLogger(__name__)


def make_training_example(outbox_id: int) -> bool:
    """The job: turns one outbox row into a training example; triggers retraining when
    enough are new."""
    with session_scope(job_engine()) as session:
        queue_id = feedback.make_training_example(session=session, outbox_id=outbox_id)
        queue = session.get(Queue, queue_id) if queue_id else None
        due = queue is not None and feedback.retrain_due(session=session, queue=queue)
    if due and queue_id is not None:
        conn = job_redis()
        if not conn.exists(retrain_backoff_key(queue_id)):
            enqueue_retrain(conn, queue_id, reason="enough new labels")
    return queue_id is not None


def enqueue_training_examples(conn: Redis, outbox_ids: list[int]) -> None:
    """Hands outbox rows to RQ; the job id makes a repeat hand-over harmless."""
    rq = RQQueue(FEEDBACK_QUEUE, connection=conn)
    with conn.pipeline() as pipe:
        for outbox_id in outbox_ids:
            rq.enqueue_call(
                make_training_example,
                args=(outbox_id,),
                job_id=f"outbox-{outbox_id}",
                result_ttl=60,
                pipeline=pipe,
            )
        pipe.execute()


def hand_over_outbox(engine, conn: Redis, outbox_id: int | None) -> None:
    """Enqueues a just-stored label's training example now; if Redis is away, marks the row
    due again so the relay hands it over as soon as Redis answers."""
    if outbox_id is None:
        return
    try:
        enqueue_training_examples(conn, [outbox_id])
    except Exception:  # noqa: BLE001 - Redis down must not fail a stored decision
        log.warning("Redis unavailable; outbox row %s left for the relay", outbox_id)
        with session_scope(engine) as s:
            s.execute(
                update(Outbox)
                .where(col(Outbox.id) == outbox_id)
                .values(enqueued_at=None, attempts=col(Outbox.attempts) - 1)
            )


def enqueue_outbox(conn: Redis, rows: list[tuple]) -> None:
    """Hands outbox rows (id, kind, queue_id, model_version_id) to RQ."""
    examples = [r[0] for r in rows if r[1] == OutboxKind.TRAINING_EXAMPLE]
    if examples:
        enqueue_training_examples(conn, examples)
    for outbox_id, kind, queue_id, version_id in rows:
        if kind == OutboxKind.RESCORE:
            enqueue_rescore(conn, queue_id, version_id, outbox_id)


def relay_outbox(engine, conn: Redis, now=None) -> int:
    """Hands every due outbox row to RQ; rows stay due when Redis is away. Returns the count.

    Three short steps, so no database transaction waits on Redis.
    """
    with session_scope(engine, write=False) as session:
        rows = feedback.outbox_due(session=session, now=now)
    rows = sort_out(engine, conn, rows, now=now)  # less jobs under way and rows it parks
    if not rows:
        return 0
    try:
        enqueue_outbox(conn, rows)
    except RedisError as exc:
        log.warning("outbox relay: Redis unavailable (%s); %d rows wait", exc, len(rows))
        return 0
    with session_scope(engine) as session:
        feedback.mark_enqueued(session=session, outbox_ids=[r[0] for r in rows], now=now)
    return len(rows)
