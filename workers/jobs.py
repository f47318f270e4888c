"""RQ job functions: plain, importable, taking ids, each opening its own session.

Every job is idempotent: running it twice has the effect of running it once.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import LockError
from sqlalchemy import select

from app import resolve_redis_url
from app.db import get_engine, session_scope
from app.learning.feedback import make_training_example as _make_example
from app.learning.feedback import retrain_due
from app.learning.training import TrainingFailed, fit, snapshot_is_new, store, take_snapshot
from app.models import ModelVersion, Queue
from app.review.service import expire_leases
from app.settings import Settings
from app.tasks import enqueue_retrain, relay_outbox

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
LOCK_SECONDS = 60


@contextmanager
def _held_while_alive(conn: Redis, key: str):
    """A Redis lock kept alive by this process: renewed every LOCK_SECONDS / 3, so a worker
    killed mid-run frees it within LOCK_SECONDS instead of blocking the queue for the
    length of a whole run."""
    lock = conn.lock(
        key, timeout=LOCK_SECONDS, blocking_timeout=min(5, LOCK_SECONDS), thread_local=False
    )
    if not lock.acquire():
        raise LockError(f"{key} is held by another run")
    done = threading.Event()

    def renew():
        while not done.wait(LOCK_SECONDS / 3):
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
    transaction, so reviewers are never blocked by a long fit.
    """
    conn = _redis()
    engine = _engine()
    with _held_while_alive(conn, f"loupe:retrain-lock:{queue_id}"):
        with session_scope(engine, write=False) as session:
            queue = session.get(Queue, queue_id)
            if queue is None:
                return {"status": "skipped", "why": "queue no longer exists"}
            snap = take_snapshot(session=session, queue_id=queue_id)
            if not snapshot_is_new(session=session, queue_id=queue_id, snap=snap):
                return {
                    "status": "skipped",
                    "why": "no new training examples since the last version",
                }
            active = session.scalar(
                select(ModelVersion).where(ModelVersion.queue_id == queue_id, ModelVersion.active)
            )
            active_artifact = (active.artifact, active.artifact_sha256) if active else None
        try:
            fitted = fit(snap, seed=seed, active_artifact=active_artifact)
            with session_scope(engine) as session:
                version = store(session=session, queue=session.get(Queue, queue_id), fitted=fitted)
        except TrainingFailed as exc:
            # Do not retry on every new label: wait a while or for a person to ask.
            conn.set(retrain_backoff_key(queue_id), str(exc), ex=RETRAIN_BACKOFF_SECONDS)
            log.warning("retraining queue %s failed: %s", queue_id, exc)
            raise
        conn.delete(retrain_backoff_key(queue_id))
        if version is None:
            return {"status": "skipped", "why": "another run stored this snapshot first"}
        log.info("queue %s: trained %s (%s)", queue.name, version.version, reason)
        return {
            "status": "trained",
            "version": version.version,
            "active": version.active,
            "metrics": version.metrics,
        }


def run_maintenance() -> dict:
    """Relays the outbox and returns items whose lease ran out."""
    engine = _engine()
    relayed = relay_outbox(engine, _redis())
    with session_scope(engine) as session:
        expired = expire_leases(session=session)
    return {"relayed": relayed, "expired": expired}
