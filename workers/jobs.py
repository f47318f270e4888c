"""RQ job functions: plain, importable, taking ids, each opening its own session.

Every job is idempotent: running it twice has the effect of running it once.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import LockError
from sqlalchemy import select, update

from app import resolve_redis_url
from app.db import get_engine, session_scope
from app.learning.feedback import make_training_example as _make_example
from app.learning.feedback import materialize_auto_examples, retrain_due
from app.learning.registry import fail_abandoned_runs, finish_run, schedule_due, start_run
from app.learning.rescoring import rescore_queue
from app.learning.training import (
    TrainingFailed,
    active_for_comparison,
    fit,
    settings_hash,
    snapshot_is_new,
    store,
    take_snapshot,
    training_settings,
)
from app.models import Outbox, Queue, utcnow
from app.queues.service import policy_of
from app.review.service import expire_leases
from app.settings import Settings
from app.states import RunStatus
from app.tasks import (
    RETRAIN_TIMEOUT,
    enqueue_retrain,
    relay_outbox,
    retrain_lock_key,
)

log = logging.getLogger(__name__)


def _engine():
    return get_engine(Settings().resolved_database_url())


def _redis() -> Redis:
    return Redis.from_url(
        resolve_redis_url(Settings()), socket_timeout=10, socket_connect_timeout=5
    )


def make_training_example(outbox_id: int) -> bool:
    """Turns one outbox row into a training example; triggers retraining when enough are new."""
    with session_scope(_engine()) as session:
        queue_id = _make_example(session=session, outbox_id=outbox_id)
        queue = session.get(Queue, queue_id) if queue_id else None
        due = queue is not None and retrain_due(session=session, queue=queue)
    if due:
        conn = _redis()
        if not conn.exists(retrain_backoff_key(queue_id)):
            enqueue_retrain(conn, queue_id, reason="enough new labels")
    return queue_id is not None


RETRAIN_BACKOFF_SECONDS = 600


@contextmanager
def _held_while_alive(conn: Redis, key: str, seconds: int | None = None, wait: float = 5):
    """A Redis lock kept alive by this process: renewed every third of its time to live, so
    a worker killed mid-run frees it within that time (LOUPE_RETRAIN_LOCK_SECONDS) instead
    of blocking the queue for the length of a whole run. Waits `wait` seconds for it."""
    seconds = seconds or Settings().retrain_lock_seconds
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


def retrain_backoff_key(queue_id: int) -> str:
    return f"loupe:retrain-failed:{queue_id}"


def retrain(queue_id: int, reason: str = "requested", seed: int = 0) -> dict:
    """Trains a new model version for the queue; one run per queue at a time.

    Reads the snapshot, fits with no transaction open, then stores in a short write
    transaction, so reviewers are never blocked by a long fit. Every run is recorded with
    how it ended; a failed run leaves the active model as it was. A promotion re-scores the
    items still waiting.
    """
    conn = _redis()
    engine = _engine()
    # A second run of the queue (a person's follow-up) waits for the first to finish.
    with _held_while_alive(conn, retrain_lock_key(queue_id), wait=RETRAIN_TIMEOUT):
        with session_scope(engine) as session:
            queue = session.get(Queue, queue_id)
            if queue is None:
                return {"status": RunStatus.SKIPPED, "why": "queue no longer exists"}
            if policy_of(queue).train_on_auto:
                materialize_auto_examples(session=session, queue_id=queue_id)
            run_id = start_run(session=session, queue_id=queue_id, trigger=reason).id
        try:
            outcome = _train(engine, queue_id, seed)
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
        with session_scope(engine) as session:
            finish_run(
                session=session,
                run_id=run_id,
                status=outcome["status"],
                message=outcome.get("why") or outcome.get("reason"),
                version_id=outcome.get("version_id"),
            )
        conn.delete(retrain_backoff_key(queue_id))
    if outcome.get("active"):
        relay_outbox(engine, conn)  # the re-scoring promised with the promotion, now
    return outcome


def _train(engine, queue_id: int, seed: int) -> dict:
    with session_scope(engine, write=False) as session:
        queue = session.get(Queue, queue_id)
        snap = take_snapshot(
            session=session, queue_id=queue_id, include_auto=policy_of(queue).train_on_auto
        )
        settings = settings_hash(training_settings(queue, seed))
        if not snapshot_is_new(session=session, queue_id=queue_id, snap=snap, settings=settings):
            return {
                "status": RunStatus.SKIPPED,
                "why": "no new training examples or settings since the last version",
            }
        active = active_for_comparison(session, queue_id)
    fitted = fit(snap, queue=queue, seed=seed, active=active)
    with session_scope(engine) as session:
        version = store(session=session, queue=session.get(Queue, queue_id), fitted=fitted)
        if version is None:
            return {"status": RunStatus.SKIPPED, "why": "another run stored this snapshot first"}
        log.info("queue %s: trained %s", queue.name, version.version)
        return {
            "status": RunStatus.TRAINED,
            "version": version.version,
            "version_id": version.id,
            "active": version.active,
            "reason": version.metrics.get("promotion_reason"),
            "metrics": version.metrics,
        }


def rescore(queue_id: int, version_id: int, outbox_id: int | None = None) -> int:
    """Re-scores the queue's waiting items with a newly active version, then marks the
    outbox row that promised it as done."""
    engine = _engine()
    n = rescore_queue(engine, queue_id=queue_id, version_id=version_id)
    if outbox_id is not None:
        with session_scope(engine) as session:
            session.execute(
                update(Outbox).where(Outbox.id == outbox_id).values(processed_at=utcnow())
            )
    return n


def run_maintenance() -> dict:
    """Relays the outbox, returns items whose lease ran out, closes runs whose worker died
    and starts the scheduled retraining runs that are due."""
    engine = _engine()
    conn = _redis()
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
                scheduled.append(queue.id)
    for queue_id in scheduled:
        enqueue_retrain(conn, queue_id, reason="schedule")
    return {
        "relayed": relayed,
        "expired": expired,
        "abandoned_runs": abandoned,
        "scheduled": len(scheduled),
    }
