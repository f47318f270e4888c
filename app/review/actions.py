"""What a reviewer can do besides answering: escalate, flag, keep the lease, undo, reopen."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlmodel import Session, col

from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.models import (
    Claim,
    Item,
    ItemEvent,
    Label,
    Outbox,
    Queue,
    Review,
    TrainingExample,
    User,
    id_of,
    utcnow,
)
from app.queues.service import policy_of
from app.review.service import _claim_for, _release, check_still_held
from app.states import ClaimState, ItemStatus, LabelSource

UNDO_WINDOW = timedelta(minutes=2)
MAX_TEXT = 2000


def _text(value, field: str, required: bool) -> str | None:
    value = (value or "").strip() if isinstance(value, str) or value is None else None
    if value is None or (required and not value) or (value and len(value) > MAX_TEXT):
        raise ValidationFailed(
            f"A {field} is text of {'1' if required else '0'} to {MAX_TEXT} characters.",
            [{"field": field, "message": "required" if required else "too long"}],
        )
    return value or None


def _live(session: Session, token: str, user: User, now) -> tuple[Claim, Item]:
    claim, item = _claim_for(session, token, user)
    check_still_held(session=session, claim=claim, item=item, now=now)
    return claim, item


def record(session: Session, *, item_id: int, user: User, kind: str, comment=None, now=None):
    session.add(
        ItemEvent(
            item_id=item_id,
            user_id=id_of(user),
            kind=kind,
            comment=comment,
            created_at=now or utcnow(),
        )
    )


def escalate(*, session: Session, token: str, user: User, reason, now=None) -> Item:
    """Sends the item to a lead with the reviewer's reason; it leaves the review queue."""
    now = now or utcnow()
    reason = _text(reason, "reason", required=True)
    claim, item = _live(session, token, user, now)
    claim.state = ClaimState.ESCALATED
    if item.status != ItemStatus.GOLD:  # a gold item stays gold: only the claim ends
        _release(item)
        item.status = ItemStatus.ESCALATED
    record(session, item_id=id_of(item), user=user, kind="escalate", comment=reason, now=now)
    session.flush()
    return item


def flag(*, session: Session, token: str, user: User, comment, now=None) -> Item:
    """Marks the item as suspicious; the reviewer keeps it and still answers."""
    now = now or utcnow()
    comment = _text(comment, "comment", required=True)
    _claim, item = _live(session, token, user, now)
    record(session, item_id=id_of(item), user=user, kind="flag", comment=comment, now=now)
    session.flush()
    return item


def flags_of(*, session: Session, item_id: int) -> list[str]:
    return list(
        session.scalars(
            select(col(ItemEvent.comment))
            .where(col(ItemEvent.item_id) == item_id, col(ItemEvent.kind) == "flag")
            .order_by(col(ItemEvent.id))
        )
    )


def heartbeat(*, session: Session, token: str, user: User, now=None) -> datetime:
    """Extends a live lease by the queue's lease length; returns the new expiry."""
    now = now or utcnow()
    claim, item = _live(session, token, user, now)
    queue = session.get_one(Queue, item.queue_id)
    claim.expires_at = now + timedelta(seconds=policy_of(queue).lease_seconds)
    item.lease_expires_at = claim.expires_at
    session.flush()
    return claim.expires_at


@dataclass
class Reopened:
    item: Item
    claim: Claim
    previous_label: str


def _used_for_training(session: Session, item_id: int) -> bool:
    return (
        session.scalars(
            select(func.count())
            .select_from(TrainingExample)
            .where(
                col(TrainingExample.item_id) == item_id,
                col(TrainingExample.used_by_version_id).is_not(None),
            )
        ).one()
        > 0
    )


def _others_answered(session: Session, review: Review) -> bool:
    return (
        session.scalar(
            select(func.count())
            .select_from(Review)
            .where(col(Review.item_id) == review.item_id, col(Review.user_id) != review.user_id)
        )
        or 0
    ) > 0


def _reverse(session: Session, review: Review, user: User, kind: str, now) -> Reopened:
    """Takes a decision back and hands the item to the reviewer again, under a new claim."""
    item = session.scalars(
        select(Item)
        .where(col(Item.id) == review.item_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if _used_for_training(session, id_of(item)):
        raise Conflict("This label has already been used to train a model; it cannot be reopened.")
    if item.status == ItemStatus.IN_REVIEW:
        raise Conflict("Someone is reviewing this item right now; try again later.")
    label = session.scalar(select(Label).where(col(Label.item_id) == item.id))
    if label is None and item.status != ItemStatus.GOLD and _others_answered(session, review):
        # Unsettled with others' answers (k > 1, waiting for more reviews or for a lead): the
        # reviewer may have seen them since, and taking the answer back would let one
        # reviewer rewrite the overlap, or pull the item off the lead's desk.
        raise Conflict(
            "Other reviewers have answered this item too; it is settled by their answers or by "
            "a lead, so this answer cannot be taken back."
        )
    if label is not None and label.source == LabelSource.ADJUDICATED:
        # A lead's decision is not taken back by one of the reviewers it overruled.
        raise Conflict("A lead has decided this item; it cannot be reopened.")
    if label is not None:
        # Lock the example first: a training run may be marking it used right now
        # (PostgreSQL); once it commits, the label is final and the reopen is refused.
        example = session.execute(
            select(col(TrainingExample.id), col(TrainingExample.used_by_version_id))
            .where(col(TrainingExample.label_id) == label.id)
            .with_for_update()
        ).first()
        if example is not None and example.used_by_version_id is not None:
            raise Conflict("This label has just been used to train a model; it cannot be reopened.")
        session.execute(delete(TrainingExample).where(col(TrainingExample.label_id) == label.id))
        session.execute(delete(Outbox).where(col(Outbox.label_id) == label.id))
        session.delete(label)
    previous = review.label
    session.delete(review)
    session.flush()
    queue = session.get_one(Queue, item.queue_id)
    claim = Claim(
        token=_new_token(),
        item_id=id_of(item),
        user_id=id_of(user),
        created_at=now,
        expires_at=now + timedelta(seconds=policy_of(queue).lease_seconds),
    )
    session.add(claim)
    if item.status != ItemStatus.GOLD:  # a gold item keeps no lease: the claim holds it
        item.status = ItemStatus.IN_REVIEW
        item.lease_owner_id = user.id
        item.lease_token = claim.token
        item.lease_expires_at = claim.expires_at
    record(session, item_id=id_of(item), user=user, kind=kind, comment=f"was {previous!r}", now=now)
    session.flush()
    return Reopened(item=item, claim=claim, previous_label=previous)


def _new_token() -> str:
    return secrets.token_urlsafe(24)


def undo_last(*, session: Session, queue: Queue, user: User, now=None) -> Reopened:
    """Takes back the reviewer's latest decision in this queue, if it is recent enough."""
    now = now or utcnow()
    review = session.scalar(
        select(Review)
        .join(Item, col(Item.id) == col(Review.item_id))
        .where(col(Review.user_id) == user.id, col(Item.queue_id) == queue.id)
        .order_by(col(Review.id).desc())
        .limit(1)
    )
    if review is None or review.created_at < now - UNDO_WINDOW:
        raise NotFound(
            "There is no recent decision to undo (decisions can be undone for "
            f"{int(UNDO_WINDOW.total_seconds() // 60)} minutes)."
        )
    return _reverse(session, review, user, "undo", now)


def reopen(*, session: Session, review_id: int, user: User, now=None) -> Reopened:
    """Reopens one of the reviewer's own decisions while no model has trained on it."""
    review = session.get(Review, review_id)
    if review is None:
        raise NotFound("No such decision.")
    if review.user_id != user.id:
        raise Forbidden("You can only reopen your own decisions.")
    return _reverse(session, review, user, "reopen", now or utcnow())


def latest_review(*, session: Session, queue: Queue, user: User, external_id: str) -> Review:
    """The reviewer's own latest decision on an item of this queue (what the API reopens);
    NotFound when they have none, so other people's decisions stay out of sight."""
    review = session.scalar(
        select(Review)
        .join(Item, col(Item.id) == col(Review.item_id))
        .where(
            col(Item.queue_id) == queue.id,
            col(Item.external_id) == external_id,
            col(Review.user_id) == user.id,
        )
        .order_by(col(Review.id).desc())
        .limit(1)
    )
    if review is None:
        raise NotFound(f"You have no decision on {external_id!r} in queue {queue.name!r}.")
    return review


def history(
    *,
    session: Session,
    user: User,
    queue_id: int | None = None,
    label: str | None = None,
    since: datetime | None = None,
    limit: int = 200,
) -> list[dict]:
    """The reviewer's own decisions, newest first, with whether each can still be reopened."""
    stmt = (
        select(Review, col(Item.external_id), col(Item.status), col(Queue.name))
        .join(Item, col(Item.id) == col(Review.item_id))
        .join(Queue, col(Queue.id) == col(Item.queue_id))
        .where(col(Review.user_id) == user.id)
        .order_by(col(Review.id).desc())
        .limit(limit)
    )
    if queue_id is not None:
        stmt = stmt.where(col(Item.queue_id) == queue_id)
    if label:
        stmt = stmt.where(col(Review.label) == label)
    if since is not None:
        stmt = stmt.where(col(Review.created_at) >= since)
    rows = session.execute(stmt).all()
    ids = [r[0].item_id for r in rows]
    used = (
        set(
            session.scalars(
                select(col(TrainingExample.item_id)).where(
                    col(TrainingExample.item_id).in_(ids),
                    col(TrainingExample.used_by_version_id).is_not(None),
                )
            )
        )
        | set(
            session.scalars(
                select(col(Label.item_id)).where(
                    col(Label.item_id).in_(ids), col(Label.source) == LabelSource.ADJUDICATED
                )
            )
        )
        if rows
        else set()
    )
    return [
        {
            "review": r,
            "external_id": ext,
            # A gold item looks like any answered item to its reviewers (app.desk.gold).
            "status": ItemStatus.DONE if status == ItemStatus.GOLD else status,
            "queue": qname,
            "reopenable": r.item_id not in used and status != ItemStatus.IN_REVIEW,
        }
        for r, ext, status, qname in rows
    ]


SKIP_MEMORY = timedelta(minutes=15)


def recently_skipped(*, session: Session, queue: Queue, user: User, now=None) -> list[int]:
    """Items this reviewer skipped lately, so the next claim passes over them."""
    since = (now or utcnow()) - SKIP_MEMORY
    return list(
        session.scalars(
            select(col(ItemEvent.item_id))
            .join(Item, col(Item.id) == col(ItemEvent.item_id))
            .where(
                col(ItemEvent.user_id) == user.id,
                col(ItemEvent.kind) == "skip",
                col(ItemEvent.created_at) >= since,
                col(Item.queue_id) == queue.id,
            )
            .order_by(col(ItemEvent.id).desc())
            .limit(200)
        )
    )
