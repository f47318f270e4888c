"""Re-scoring the items still waiting after a new model becomes active, as an RQ job.

Batches by item id; each batch is read, scored with no transaction open, then written in a
short transaction that only touches items still waiting, which are routed again by their new
answers exactly as arriving items are (app.routing.placement), drift and novelty guard
included. Items a reviewer holds keep
the prediction they see, items a person has answered already (waiting for a further review)
keep theirs, and producers' own predictions are left alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import bindparam, delete, exists, select, update
from sqlmodel import Session, col

from app.bulk import insert_rows
from app.db import session_scope
from app.learning.drift import drift_hold
from app.learning.feedback import mark_enqueued
from app.learning.job_queues import enqueue_once, job_engine
from app.learning.scoring import load_version
from app.models import (
    AuditFrame,
    Item,
    Label,
    ModelVersion,
    Outbox,
    Prediction,
    Queue,
    Review,
    table_of,
    utcnow,
)
from app.queues.events import paused_reason
from app.queues.order import rank_of
from app.queues.service import policy_of
from app.routing.placement import STATUS_FOR_ROUTE, place, record_rows, rescored_reason
from app.states import ItemStatus, OutboxKind

log = logging.getLogger(__name__)
_WAITING_OR_RUNNING = ("queued", "started", "deferred", "scheduled")

BATCH = 1000


@dataclass(frozen=True)
class Progress:
    rescored: int
    last_item_id: int | None  # None: nothing left (or the version is no longer active)


# Waiting for a further review (k > 1, a second review): a person has answered it already,
# and no model may overrule that answer by auto-accepting the item.
_UNANSWERED = ~exists(select(col(Review.id)).where(col(Review.item_id) == col(Item.id)))


def _waiting_batch(session: Session, queue_id: int, after_id: int, size: int):
    items = session.execute(
        select(col(Item.id), col(Item.external_id), col(Item.payload))
        .where(
            col(Item.queue_id) == queue_id,
            col(Item.status) == ItemStatus.PENDING,
            col(Item.id) > after_id,
            _UNANSWERED,
        )
        .order_by(col(Item.id))
        .limit(size)
    ).all()
    if not items:
        return [], None
    latest: dict[int, tuple[str, str | None]] = {}
    for item_id, source, version in session.execute(
        select(col(Prediction.item_id), col(Prediction.source), col(Prediction.model_version))
        .where(col(Prediction.item_id).in_([i.id for i in items]))
        .order_by(col(Prediction.item_id), col(Prediction.id))
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
        queue = session.get_one(Queue, queue_id)
        items, latest = _waiting_batch(session, queue_id, after_id, size)
        # The queue-level drift guard holds re-scored items as it holds arriving ones: a
        # value in a bucket recent inputs crowd goes to a person, whichever model answers.
        hold = drift_hold(session, queue) if items else None
    if not items:
        return Progress(0, None)
    todo = [
        i
        for i in items
        if latest.get(i.id, ("model", None))[0] != "producer"
        and latest.get(i.id, (None, None))[1] != version.version
    ]
    # The hold was measured for the version active when it was read; a newer one (this
    # version, just promoted) has a profile of its own and its own crowded buckets.
    crowded = hold["features"] if hold is not None and hold["version_id"] == version_id else None
    if todo:
        proba, unlike = model.assess([i.payload for i in todo], crowded)
        scored = model.candidates(proba, queue.labels, unlike)
    else:
        scored = []
    now = utcnow()
    with session_scope(engine) as session:
        session.connection(execution_options={"sqlite_immediate": True})
        # Replaced while this batch was scored (a roll-back, a newer version): stop here,
        # so a retired model never has the last word.
        if not session.scalar(
            select(col(ModelVersion.active)).where(col(ModelVersion.id) == version_id)
        ):
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
            table=table_of(Prediction),
            rows=rows,
            json_columns=("candidates", "detail"),
        )
        _reroute(session, queue_id, rows, {i.id: i.external_id for i in todo}, now)
    return Progress(len(rows), items[-1].id)


def _reroute(
    session: Session, queue_id: int, rows: list[dict], external_ids: dict[int, str], now
) -> None:
    """Routes the re-scored waiting items again by their new answers, as on arrival: those
    that now qualify are auto-accepted (subject to the audit draw and any pause), those that
    no longer do go to review; each keeps the reason it first came with the change noted,
    and takes its place in the uncertainty order."""
    if not rows:
        return
    queue = session.get_one(Queue, queue_id)
    policy = policy_of(queue)
    paused = paused_reason(session=session, queue=queue)
    ids = [r["item_id"] for r in rows]
    previous = {
        item_id: (decision, reason)
        for item_id, decision, reason in session.execute(
            select(col(Item.id), col(Item.route_decision), col(Item.route_reason)).where(
                col(Item.id).in_(ids)
            )
        )
    }
    changes, frames, labels = [], [], []
    for r in rows:
        item_id = r["item_id"]
        placed = place(
            policy=policy,
            paused=paused,
            queue_name=queue.name,
            external_id=external_ids[item_id],
            candidates=r["candidates"],
            detail=r["detail"],
        )
        changes.append(
            {
                "item_id": item_id,
                "status": STATUS_FOR_ROUTE[placed.route.decision],
                "route_decision": placed.route.decision,
                "route_reason": rescored_reason(
                    previous[item_id][1], previous[item_id][0], placed, r["model_version"]
                ),
                "uncertainty_rank": rank_of(r["candidates"], r["detail"], external_ids[item_id]),
            }
        )
        frame, label = record_rows(
            placed,
            queue_id=queue_id,
            item_id=item_id,
            candidates=r["candidates"],
            model_version=r["model_version"],
            policy=policy,
            paused=paused is not None,
            now=now,
        )
        if frame is not None:
            frames.append(frame)
        if label is not None:
            labels.append(label)
    items = table_of(Item)
    session.execute(update(items).where(items.c.id == bindparam("item_id")), changes)
    # The old answers' frame rows go: nobody has answered these items yet, and the estimate
    # must judge the answers that decide their route now.
    session.execute(delete(AuditFrame).where(col(AuditFrame.item_id).in_(ids)))
    insert_rows(session=session, table=table_of(AuditFrame), rows=frames)
    insert_rows(session=session, table=table_of(Label), rows=labels, json_columns=("reviewers",))
    if labels:
        log.info("re-scoring auto-accepted %d waiting items of %s", len(labels), queue.name)


def _still_waiting(session: Session, ids: list[int]) -> set[int]:
    """The items among `ids` nobody has claimed, locked until commit on PostgreSQL so a
    claim cannot slip in between (it skips them for that moment instead)."""
    if not ids:
        return set()
    stmt = select(col(Item.id)).where(
        col(Item.id).in_(ids), col(Item.status) == ItemStatus.PENDING, _UNANSWERED
    )
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
                update(Outbox).where(col(Outbox.id) == outbox_id).values(processed_at=utcnow())
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
            select(col(Outbox.id), col(Outbox.queue_id)).where(
                col(Outbox.kind) == OutboxKind.RESCORE,
                col(Outbox.model_version_id) == version_id,
                col(Outbox.processed_at).is_(None),
                col(Outbox.enqueued_at).is_(None),
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
