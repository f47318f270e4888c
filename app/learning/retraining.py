"""Retraining as a background job: one run per queue at a time, recorded, backing off after
a failure. The run itself is app.learning.training.train_model_version."""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from redis import Redis
from redis.exceptions import LockError
from rq.job import Job

from app.db import session_scope
from app.learning.fitting import TrainingFailed
from app.learning.job_queues import LONG_JOB_TIMEOUT, enqueue_once, job_engine, job_redis
from app.learning.registry import finish_run, start_run
from app.learning.rescoring import hand_over_rescoring
from app.learning.training import train_model_version
from app.models import Queue, id_of
from app.settings import current_settings
from app.states import RunStatus

log = logging.getLogger(__name__)

RETRAIN_BACKOFF_SECONDS = 600
# A started run takes its lock within seconds (or fails); started longer ago without it, it
# is a run whose worker died.
DEAD_RUN_AFTER = timedelta(seconds=10)


def retrain_lock_key(queue_id: int) -> str:
    """The Redis lock a running retraining of the queue holds (see retrain)."""
    return f"loupe:retrain-lock:{queue_id}"


def retrain_backoff_key(queue_id: int) -> str:
    return f"loupe:retrain-failed:{queue_id}"


@contextmanager
def _held_while_alive(conn: Redis, key: str, seconds: int | None = None, wait: float = 5):
    """A Redis lock kept alive by this process: renewed every third of its time to live, so
    a worker killed mid-run frees it within that time (LOUPE_RETRAIN_LOCK_SECONDS) instead
    of blocking the queue for the length of a whole run. Waits `wait` seconds for it."""
    seconds = seconds or current_settings().retrain_lock_seconds
    lock = conn.lock(key, timeout=seconds, blocking_timeout=wait, thread_local=False)
    if not lock.acquire():
        raise LockError(f"{key} is held by another run")
    done = threading.Event()

    def renew():
        while not done.wait(seconds / 3):
            try:
                lock.reacquire()
            except Exception:  # noqa: BLE001 - the run itself will notice Redis is gone
                log.warning("could not renew %s", key, exc_info=True)

    renewer = threading.Thread(target=renew, daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join(timeout=5)
        try:
            lock.release()
        except LockError:
            pass


def retrain(queue_id: int, reason: str = "requested", seed: int = 0) -> dict:
    """The job: trains a new model version for the queue (train_model_version); one run per
    queue at a time.

    Every run is recorded with how it ended; a failed run leaves the active model as it was.
    A promotion re-scores the items still waiting.
    """
    conn = job_redis()
    engine = job_engine()
    # A second run of the queue (a person's follow-up) waits for the first to finish.
    with _held_while_alive(conn, retrain_lock_key(queue_id), wait=LONG_JOB_TIMEOUT):
        with session_scope(engine) as session:
            if session.get(Queue, queue_id) is None:
                return {"status": RunStatus.SKIPPED, "why": "queue no longer exists"}
            run_id = id_of(start_run(session=session, queue_id=queue_id, trigger=reason))
        try:
            outcome = train_model_version(db=engine, queue_id=queue_id, seed=seed)
        except Exception as exc:
            message = (
                str(exc) if isinstance(exc, TrainingFailed) else f"{type(exc).__name__}: {exc}"
            )
            with session_scope(engine) as session:
                finish_run(session=session, run_id=run_id, status=RunStatus.FAILED, message=message)
            # Do not retry on every new label: wait a while or for a person to ask.
            conn.set(retrain_backoff_key(queue_id), message, ex=RETRAIN_BACKOFF_SECONDS)
            log.warning("retraining queue %s failed: %s", queue_id, message)
            raise
        result = outcome.summary()
        with session_scope(engine) as session:
            finish_run(
                session=session,
                run_id=run_id,
                status=outcome.status,
                message=result.get("why") or result.get("reason"),
                version_id=result.get("version_id"),
            )
        conn.delete(retrain_backoff_key(queue_id))
    if result.get("active"):
        # The re-scoring promised with the promotion, now rather than at the next relay.
        hand_over_rescoring(engine, conn, version_id=result["version_id"])
    return result


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
    job = enqueue_once(
        conn,
        job_id,
        retrain,
        args=(queue_id,),
        kwargs={"reason": reason},
        is_live=lambda job: _is_live(conn, job, queue_id),
    )
    # Collapsed into a run that has already taken its snapshot (it is under way, or it ended
    # since it was found live): the person's request gets a run of its own after it, which
    # waits for the running one's lock, then snapshots afresh.
    if (
        follow_up
        and job is not None
        and job.get_status() not in ("queued", "deferred", "scheduled")
    ):
        if not job_id.endswith("-next"):
            return _enqueue_retrain_job(conn, queue_id, reason, f"{job_id}-next", False)
    return job_id
