"""The enqueueing side of RQ: which job goes on which queue, and the outbox relay."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue as RQQueue
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job
from sqlalchemy import update

from app.db import session_scope
from app.learning.feedback import mark_enqueued, outbox_due
from app.learning.parking import sort_out
from app.models import Outbox
from app.states import OutboxKind

log = logging.getLogger(__name__)

FEEDBACK_QUEUE = "loupe-feedback"
TRAINING_QUEUE = "loupe-training"
ALL_QUEUES = (FEEDBACK_QUEUE, TRAINING_QUEUE)
RETRAIN_TIMEOUT = 60 * 60


def enqueue_training_examples(conn: Redis, outbox_ids: list[int]) -> None:
    """Hands outbox rows to RQ; the job id makes a repeat hand-over harmless."""
    rq = RQQueue(FEEDBACK_QUEUE, connection=conn)
    with conn.pipeline() as pipe:
        for outbox_id in outbox_ids:
            rq.enqueue_call(
                "workers.jobs.make_training_example",
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
                .where(Outbox.id == outbox_id)
                .values(enqueued_at=None, attempts=Outbox.attempts - 1)
            )


def retrain_lock_key(queue_id: int) -> str:
    """The Redis lock a running retraining of the queue holds (see workers.jobs.retrain)."""
    return f"loupe:retrain-lock:{queue_id}"


# A started run takes its lock within seconds (or fails); started longer ago without it, it
# is a run whose worker died.
DEAD_RUN_AFTER = timedelta(seconds=10)


def _is_live(conn: Redis, job: Job, queue_id: int) -> bool:
    status = job.get_status(refresh=True)
    if status in ("queued", "deferred", "scheduled"):
        return True
    if status != "started":
        return False
    if conn.exists(retrain_lock_key(queue_id)):
        return True
    started = job.started_at
    if started is not None and started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    # RQ still lists a job whose worker was killed as started, for minutes.
    return started is None or datetime.now(UTC) - started < DEAD_RUN_AFTER


def enqueue_retrain(
    conn: Redis, queue_id: int, reason: str = "requested", *, follow_up: bool = False
) -> str:
    """Enqueues a retraining of the queue unless one is already waiting or running.

    Repeated triggers collapse into the job already there, whose id is returned; a job RQ
    still calls started but whose worker died (its lock is gone) is replaced. With
    `follow_up` (a person asking), a run already under way gets one more run queued after
    it, since its snapshot may predate what the person wants trained.
    """
    return _enqueue_retrain_job(conn, queue_id, reason, f"retrain-q{queue_id}", follow_up)


def _enqueue_retrain_job(conn, queue_id, reason, job_id, follow_up) -> str:
    job = _enqueue_once(
        conn,
        job_id,
        "workers.jobs.retrain",
        args=(queue_id,),
        kwargs={"reason": reason},
        is_live=lambda job: _is_live(conn, job, queue_id),
    )
    if follow_up and job is not None and job.get_status() == "started":
        # It waits for the running one's lock, then snapshots afresh.
        if not job_id.endswith("-next"):
            return _enqueue_retrain_job(conn, queue_id, reason, f"{job_id}-next", False)
    return job_id


def enqueue_rescore(conn: Redis, queue_id: int, version_id: int, outbox_id: int) -> str:
    """Re-scores the queue's waiting items with the version just made active. The job is
    named after its outbox row: handing it over again while it runs changes nothing, and
    a lost or failed one is replaced."""
    job_id = f"outbox-{outbox_id}"
    _enqueue_once(
        conn,
        job_id,
        "workers.jobs.rescore",
        args=(queue_id, version_id, outbox_id),
        is_live=lambda job: job.get_status(refresh=True) in _WAITING_OR_RUNNING,
    )
    return job_id


_WAITING_OR_RUNNING = ("queued", "started", "deferred", "scheduled")


def _enqueue_once(conn, job_id, func, *, args, kwargs=None, is_live) -> Job | None:
    """Enqueues a long job on the training queue under `job_id` unless a live one holds that
    id; finished, failed or dead ones are replaced. Returns the live job it collapsed into,
    or None when it enqueued a new one."""
    rq = RQQueue(TRAINING_QUEUE, connection=conn)
    for _ in range(3):
        try:
            rq.enqueue_call(
                func,
                args=args,
                kwargs=kwargs or {},
                job_id=job_id,
                timeout=RETRAIN_TIMEOUT,
                result_ttl=3600,
                failure_ttl=7 * 24 * 3600,
                unique=True,
            )
            return None
        except DuplicateJobError:
            try:
                job = Job.fetch(job_id, connection=conn)
            except NoSuchJobError:
                continue
            if is_live(job):
                return job
            job.delete()
    return None


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
        rows = outbox_due(session=session, now=now)
    rows = sort_out(engine, conn, rows, now=now)  # less jobs under way and rows it parks
    if not rows:
        return 0
    try:
        enqueue_outbox(conn, rows)
    except RedisError as exc:
        log.warning("outbox relay: Redis unavailable (%s); %d rows wait", exc, len(rows))
        return 0
    with session_scope(engine) as session:
        mark_enqueued(session=session, outbox_ids=[r[0] for r in rows], now=now)
    return len(rows)
