"""Re-scoring the items still waiting after a new model becomes active, as an RQ job.

Batches by item id; each batch is read, scored with no transaction open, then written in a
short transaction that only touches items still waiting. Items a reviewer holds keep the
prediction they see, and producers' own predictions are left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, or_, select, update
from sqlmodel import Session

from app.bulk import insert_rows
from app.db import session_scope
from app.learning.feedback import mark_enqueued
from app.learning.job_queues import enqueue_once, job_engine
from app.learning.scoring import load_version
from app.models import Item, ModelVersion, Outbox, Prediction, Queue, utcnow
from app.states import ItemStatus, OutboxKind

log = logging.getLogger(__name__)
_WAITING_OR_RUNNING = ("queued", "started", "deferred", "scheduled")

BATCH = 1000


@dataclass(frozen=True)
class Progress:
    rescored: int
    last_item_id: int | None  # None: nothing left (or the version is no longer active)


def _waiting_batch(session: Session, queue_id: int, after_id: int, size: int):
    items = session.execute(
        select(Item.id, Item.payload)
        .where(Item.queue_id == queue_id, Item.status == ItemStatus.PENDING, Item.id > after_id)
        .order_by(Item.id)
        .limit(size)
    ).all()
    if not items:
        return [], None
    latest: dict[int, tuple[str, str | None]] = {}
    for item_id, source, version in session.execute(
        select(Prediction.item_id, Prediction.source, Prediction.model_version)
        .where(Prediction.item_id.in_([i.id for i in items]))
        .order_by(Prediction.item_id, Prediction.id)
    ):
        latest[item_id] = (source, version)
    return items, latest


def rescore_batch(engine, *, queue_id: int, version_id: int, after_id: int = 0, size=BATCH):
    """Re-scores the next batch of waiting items with the given (active) version."""
    with session_scope(engine, write=False) as session:
        version = session.get(ModelVersion, version_id)
        if version is None or not version.active:
            return Progress(0, None)
        model = load_version(session, version)
        queue_labels = session.scalar(select(Queue.labels).where(Queue.id == queue_id))
        items, latest = _waiting_batch(session, queue_id, after_id, size)
    if not items:
        return Progress(0, None)
    todo = [
        i
        for i in items
        if latest.get(i.id, ("model", None))[0] != "producer"
        and latest.get(i.id, (None, None))[1] != version.version
    ]
    scored = (
        model.candidates(model.predict_proba([i.payload for i in todo]), queue_labels)
        if todo
        else []
    )
    now = utcnow()
    with session_scope(engine) as session:
        session.connection(execution_options={"sqlite_immediate": True})
        # Replaced while this batch was scored (a roll-back, a newer version): stop here,
        # so a retired model never has the last word.
        if not session.scalar(select(ModelVersion.active).where(ModelVersion.id == version_id)):
            return Progress(0, None)
        still = _still_waiting(session, [i.id for i in todo])
        rows = [
            {
                "item_id": i.id,
                "model_version": version.version,
                "source": "model",
                "candidates": cands,
                "detail": detail,
                "created_at": now,
            }
            for i, (cands, detail) in zip(todo, scored, strict=True)
            if i.id in still
        ]
        insert_rows(
            session=session,
            table=Prediction.__table__,
            rows=rows,
            json_columns=("candidates", "detail"),
        )
        _note_rescored(session, rows)
    return Progress(len(rows), items[-1].id)


RESCORED_NOTE = "re-scored by a newer model while waiting for review"


def _note_rescored(session: Session, rows: list[dict]) -> None:
    """Notes on the route reason that the answers were re-scored, once, after the reason the
    item came to a person (which stays: re-scoring never re-routes). The version that
    re-scored is on the prediction itself."""
    if not rows:
        return
    session.execute(
        update(Item)
        .where(
            Item.id.in_([r["item_id"] for r in rows]),
            or_(Item.route_reason.is_(None), ~Item.route_reason.contains(RESCORED_NOTE)),
        )
        .values(
            route_reason=func.substr(
                func.coalesce(Item.route_reason + "; ", "") + RESCORED_NOTE, 1, 500
            )
        )
    )


def _still_waiting(session: Session, ids: list[int]) -> set[int]:
    """The items among `ids` nobody has claimed, locked until commit on PostgreSQL so a
    claim cannot slip in between (it skips them for that moment instead)."""
    if not ids:
        return set()
    stmt = select(Item.id).where(Item.id.in_(ids), Item.status == ItemStatus.PENDING)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return set(session.scalars(stmt))


def rescore_queue(engine, *, queue_id: int, version_id: int) -> int:
    """Re-scores every waiting item of the queue; stops early if the version is replaced."""
    total, after = 0, 0
    while True:
        progress = rescore_batch(engine, queue_id=queue_id, version_id=version_id, after_id=after)
        total += progress.rescored
        if progress.last_item_id is None:
            return total
        after = progress.last_item_id


def rescore(queue_id: int, version_id: int, outbox_id: int | None = None) -> int:
    """The job: re-scores the queue's waiting items with a newly active version, then marks
    the outbox row that promised it as done."""
    engine = job_engine()
    n = rescore_queue(engine, queue_id=queue_id, version_id=version_id)
    if outbox_id is not None:
        with session_scope(engine) as session:
            session.execute(
                update(Outbox).where(Outbox.id == outbox_id).values(processed_at=utcnow())
            )
    return n


def enqueue_rescore(conn: Redis, queue_id: int, version_id: int, outbox_id: int) -> str:
    """Re-scores the queue's waiting items with the version just made active. The job is
    named after its outbox row: handing it over again while it runs changes nothing, and
    a lost or failed one is replaced."""
    job_id = f"outbox-{outbox_id}"
    enqueue_once(
        conn,
        job_id,
        rescore,
        args=(queue_id, version_id, outbox_id),
        is_live=lambda job: job.get_status(refresh=True) in _WAITING_OR_RUNNING,
    )
    return job_id


def hand_over_rescoring(engine, conn: Redis, *, version_id: int) -> None:
    """Enqueues the re-scoring promised when this version became active, right after the
    commit that promised it; while Redis is away the outbox relay sends it later."""
    with session_scope(engine, write=False) as session:
        promised = session.execute(
            select(Outbox.id, Outbox.queue_id).where(
                Outbox.kind == OutboxKind.RESCORE,
                Outbox.model_version_id == version_id,
                Outbox.processed_at.is_(None),
                Outbox.enqueued_at.is_(None),
            )
        ).all()
    if not promised:
        return
    try:
        for outbox_id, queue_id in promised:
            enqueue_rescore(conn, queue_id, version_id, outbox_id)
    except RedisError as exc:
        log.warning("re-scoring with version %s left for the relay: %s", version_id, exc)
        return
    with session_scope(engine) as session:
        mark_enqueued(session=session, outbox_ids=[outbox_id for outbox_id, _ in promised])
