"""One training run: snapshot → settings → fit → evaluate → store → activate.

Everything that trains a model goes through train_model_version: the retraining job (which
adds only the queue's lock and the run record, see app.learning.retraining), the demo
seeding, the tests and bench/retrain.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.db import session_scope
from app.learning.feedback import materialize_auto_examples
from app.learning.fitting import TrainingFailed, fit, settings_hash, training_settings
from app.learning.registry import active_for_comparison, snapshot_is_new, store
from app.learning.snapshot import take_snapshot
from app.models import ModelVersion, Queue
from app.queues.service import policy_of
from app.states import RunStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingOutcome:
    """What a run did: the version it stored, or why it stored none; and the seconds its
    three steps took (snapshot, fit, store)."""

    version: ModelVersion | None
    why_skipped: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> RunStatus:
        """Either trained or skipped, as the run record says."""
        return RunStatus.SKIPPED if self.version is None else RunStatus.TRAINED

    def summary(self) -> dict:
        """The run in plain values: the retraining job's result."""
        v = self.version
        if v is None:
            return {"status": RunStatus.SKIPPED, "why": self.why_skipped}
        return {
            "status": RunStatus.TRAINED,
            "version": v.version,
            "version_id": v.id,
            "active": v.active,
            "reason": v.metrics.get("promotion_reason"),
            "metrics": v.metrics,
        }


@contextmanager
def _step(db: Engine | Session, *, write: bool) -> Iterator[Session]:
    """A transaction of its own on the engine, or the caller's session as it is."""
    if isinstance(db, Session):
        yield db
        return
    with session_scope(db, write=write) as session:
        yield session


def _queue(session: Session, queue_id: int) -> Queue:
    queue = session.get(Queue, queue_id)
    if queue is None:
        raise TrainingFailed(f"There is no queue with id {queue_id}.")
    return queue


def train_model_version(*, db: Engine | Session, queue_id: int, seed: int = 0) -> TrainingOutcome:
    """Trains the queue's next model version and makes it active if it beats the active one.

    Given an engine (the worker, the benchmark), it reads in one short transaction, fits
    with no transaction open and stores in a short write transaction, so reviewers are never
    blocked by a long fit. Given a session (the demo seeding, tests), every step runs in it
    and the caller commits. Raises TrainingFailed when no model can be made; the active
    model is then untouched.
    """
    started = time.perf_counter()
    with _step(db, write=False) as session:
        train_on_auto = policy_of(_queue(session, queue_id)).train_on_auto
    if train_on_auto:  # the model's own answers become examples first, each label once
        with _step(db, write=True) as session:
            materialize_auto_examples(session=session, queue_id=queue_id)
    with _step(db, write=False) as session:
        queue = _queue(session, queue_id)
        snap = take_snapshot(
            session=session, queue_id=queue_id, include_auto=policy_of(queue).train_on_auto
        )
        settings = settings_hash(training_settings(queue, seed))
        if not snapshot_is_new(session=session, queue_id=queue_id, snap=snap, settings=settings):
            return TrainingOutcome(
                None, "no new training examples or settings since the last version"
            )
        active = active_for_comparison(session, queue_id)
    snapshot_done = time.perf_counter()
    fitted = fit(snap, queue=queue, seed=seed, active=active)
    fit_done = time.perf_counter()
    with _step(db, write=True) as session:
        version = store(session=session, queue=_queue(session, queue_id), fitted=fitted)
    seconds = {
        "snapshot": snapshot_done - started,
        "fit": fit_done - snapshot_done,
        "store": time.perf_counter() - fit_done,
    }
    if version is None:
        return TrainingOutcome(None, "another run stored this snapshot first", seconds)
    log.info("queue %s: trained %s", queue.name, version.version)
    return TrainingOutcome(version, seconds=seconds)
