"""One training run: snapshot → settings → fit → evaluate → store → activate."""

from __future__ import annotations

from sqlmodel import Session

from app.learning.fitting import fit, settings_hash, training_settings
from app.learning.registry import active_for_comparison, snapshot_is_new, store
from app.learning.snapshot import take_snapshot
from app.models import ModelVersion, Queue
from app.queues.service import policy_of


def train_model_version(*, session: Session, queue: Queue, seed: int = 0) -> ModelVersion | None:
    """Snapshot, fit and store in one session (tests, the demo); the worker splits the steps
    so that no write transaction is open while the model fits."""
    snap = take_snapshot(
        session=session, queue_id=queue.id, include_auto=policy_of(queue).train_on_auto
    )
    settings = settings_hash(training_settings(queue, seed))
    if not snapshot_is_new(session=session, queue_id=queue.id, snap=snap, settings=settings):
        return None
    active = active_for_comparison(session, queue.id)
    fitted = fit(snap, queue=queue, seed=seed, active=active)
    return store(session=session, queue=queue, fitted=fitted)
