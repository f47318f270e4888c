"""Claims and decisions: the one path that both the pages and the API use."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, or_, select, text, update
from sqlmodel import Session, col

from app.auth.service import is_member
from app.db import is_sqlite
from app.desk.consensus import (
    ask_second_review,
    consensus,
    reviews_needed,
    second_review_reason,
)
from app.desk.gold import as_seen_by, claim_gold, is_gold
from app.errors import Conflict, Forbidden, Gone, NotFound, ValidationFailed
from app.learning.feedback import add_to_outbox
from app.models import (
    Claim,
    Item,
    Label,
    Prediction,
    Queue,
    Review,
    User,
    UTCDateTime,
    id_of,
    utcnow,
)
from app.queues.order import ORDER_BY
from app.queues.service import policy_of
from app.queues.sla import nearing_before
from app.states import ClaimState, ItemStatus, LabelSource, RouteDecision
from app.trust.alarms import after_answer

MAX_COMMENT = 5000


class AlreadyDecided(Conflict):
    """A different answer on a claim that already has one (another tab, a retried request)."""

    def __init__(self, message: str, *, previous_label: str, external_id: str):
        super().__init__(message)
        self.previous_label = previous_label
        self.external_id = external_id


@dataclass
class Decision:
    item: Item
    label: Label | None
    review: Review
    outbox_id: int | None
    repeated: bool = False


def expire_leases(*, session: Session, queue_id: int | None = None, now=None) -> int:
    """Returns items whose lease ran out to the queue; returns how many."""
    now = now or utcnow()
    cond = [col(Item.status) == ItemStatus.IN_REVIEW, col(Item.lease_expires_at) < now]
    if queue_id is not None:
        cond.insert(0, col(Item.queue_id) == queue_id)
    # Items first, then their claims: the same lock order as a decision, so the two cannot
    # deadlock on PostgreSQL; rows another transaction holds are left for the next sweep.
    expired = session.execute(
        select(col(Item.id), col(Item.lease_token)).where(*cond).with_for_update(skip_locked=True)
    ).all()
    if not expired:
        return 0
    session.execute(
        update(Item)
        .where(col(Item.id).in_([r.id for r in expired]))
        .values(
            status=ItemStatus.PENDING, lease_owner_id=None, lease_token=None, lease_expires_at=None
        )
    )
    session.execute(
        update(Claim)
        .where(
            col(Claim.token).in_([r.lease_token for r in expired]),
            col(Claim.state).in_((ClaimState.LIVE, ClaimState.AHEAD)),
        )
        .values(state=ClaimState.EXPIRED)
    )
    return len(expired)


def _claim_sql(sqlite: bool, exclude: bool, order: str = "arrival", sla: bool = False) -> str:
    # One statement picks and leases the next item; on PostgreSQL SKIP LOCKED lets
    # concurrent claimers pass each other, on SQLite BEGIN IMMEDIATE serialises them.
    # Each order's ORDER BY follows an index (ix_item_claim_order, ix_item_claim_uncertainty).
    lock = "" if sqlite else " FOR UPDATE SKIP LOCKED"

    def claimable(alias: str) -> str:
        skipped = f" AND {alias}.id NOT IN :excluded" if exclude else ""
        return f"""{alias}.queue_id = :queue_id AND {alias}.status = '{ItemStatus.PENDING}'
                  AND NOT EXISTS (SELECT 1 FROM review AS r
                                   WHERE r.item_id = {alias}.id
                                     AND r.user_id = :user_id){skipped}"""

    pick = f"""SELECT i.id{", i.priority" if sla else ""} FROM item AS i
                WHERE {claimable("i")}
                ORDER BY {ORDER_BY[order]}
                LIMIT 1{lock}"""
    if sla:
        # With a service level, the first item in the queue's order (`n`, which has the
        # highest priority) gives way to the oldest item of its priority that is nearing
        # its deadline, when there is one: a second probe, of ix_item_claim_deadline.
        # Lower priorities cannot hold a more urgent item, so the claim stays two probes.
        pick = f"""SELECT COALESCE((
                   SELECT d.id FROM item AS d
                    WHERE {claimable("d")}
                      AND d.priority = n.priority AND d.created_at <= :nearing_before
                    ORDER BY d.created_at, d.id
                    LIMIT 1{lock}), n.id)
                 FROM ({pick}) AS n"""
    return f"""
        UPDATE item
           SET status = '{ItemStatus.IN_REVIEW}', lease_owner_id = :user_id,
               lease_token = :token, lease_expires_at = :expires_at
         WHERE id = ({pick})
        RETURNING id
    """


def live_claim(
    *, session: Session, queue: Queue, user: User, now=None, state: ClaimState = ClaimState.LIVE
) -> Claim | None:
    """The user's unexpired claim in this queue, if they already hold one.

    `state=ClaimState.AHEAD` finds the item leased in advance for the review page (see claim_ahead).
    """
    now = now or utcnow()
    return session.scalar(
        select(Claim)
        .join(Item, col(Item.id) == col(Claim.item_id))
        .where(
            col(Item.queue_id) == queue.id,
            col(Claim.user_id) == user.id,
            col(Claim.state) == state,
            col(Claim.expires_at) > now,
            # A gold item keeps no lease of its own: the claim alone holds it.
            or_(col(Item.lease_token) == col(Claim.token), col(Item.status) == ItemStatus.GOLD),
        )
        .order_by(col(Claim.id).desc())
        .limit(1)
    )


def claim_next(
    *,
    session: Session,
    queue: Queue,
    user: User,
    now=None,
    exclude_item_ids=(),
    state: ClaimState = ClaimState.LIVE,
) -> Claim | None:
    """Leases the most urgent claimable item to the user; None when nothing is claimable.

    `exclude_item_ids` are items this reviewer just skipped, so a skip moves on.
    """
    now = now or utcnow()
    expire_leases(session=session, queue_id=queue.id, now=now)
    token = secrets.token_urlsafe(24)
    policy = policy_of(queue)
    expires_at = now + timedelta(seconds=policy.lease_seconds)
    exclude = [int(i) for i in exclude_item_ids][:200]
    gold = claim_gold(
        session=session,
        queue=queue,
        user=user,
        policy=policy,
        token=token,
        now=now,
        expires_at=expires_at,
        state=state,
        exclude_item_ids=exclude,
    )
    if gold is not None:
        return gold
    sla_hours = policy.sla_hours
    sla = sla_hours is not None
    stmt = text(_claim_sql(is_sqlite(session), bool(exclude), policy.order, sla=sla)).bindparams(
        bindparam("expires_at", type_=UTCDateTime())
    )
    params = {"user_id": user.id, "token": token, "queue_id": queue.id, "expires_at": expires_at}
    if sla_hours is not None:
        stmt = stmt.bindparams(bindparam("nearing_before", type_=UTCDateTime()))
        params["nearing_before"] = nearing_before(sla_hours=sla_hours, now=now)
    if exclude:
        stmt = stmt.bindparams(bindparam("excluded", expanding=True))
        params["excluded"] = exclude
    item_id = session.execute(stmt, params).scalar()
    if item_id is None:
        return None
    claim = Claim(
        token=token,
        item_id=item_id,
        user_id=id_of(user),
        created_at=now,
        expires_at=expires_at,
        state=state,
    )
    session.add(claim)
    session.flush()
    return claim


def claim_ahead(
    *, session: Session, queue: Queue, user: User, now=None, exclude_item_ids=()
) -> Claim | None:
    """Leases the item after the current one, so the page can show it the moment the current
    one is answered. It is held like any claim but cannot be decided until promoted."""
    return claim_next(
        session=session,
        queue=queue,
        user=user,
        now=now,
        exclude_item_ids=exclude_item_ids,
        state=ClaimState.AHEAD,
    )


def promote_ahead(*, session: Session, ahead: Claim) -> Claim:
    """Makes the item leased in advance (still valid: see live_claim) the current one."""
    ahead.state = ClaimState.LIVE
    session.flush()
    return ahead


def _claim_for(session: Session, token: str, user: User) -> tuple[Claim, Item]:
    # populate_existing: the claim statement is raw SQL, so cached objects may be stale.
    claim = (
        session.scalar(
            select(Claim).where(col(Claim.token) == token).execution_options(populate_existing=True)
        )
        if token
        else None
    )
    if claim is None:
        raise NotFound("No such claim.")
    if claim.user_id != user.id:
        raise Forbidden("This claim belongs to someone else.")
    # Lock the item so a concurrent decision on the same claim waits for this one.
    item = session.scalars(
        select(Item)
        .where(col(Item.id) == claim.item_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if not is_member(session=session, user=user, queue=session.get_one(Queue, item.queue_id)):
        # Removed from the queue while holding one of its items: the claim gives no right.
        raise Forbidden("You are no longer a member of this claim's queue.")
    # Read the claim again now that the item is ours: a decision may have just ended it.
    session.refresh(claim)
    return claim, item


def check_still_held(*, session: Session, claim: Claim, item: Item, now) -> None:
    """Raises Gone unless the claim still holds the item. A lapsed lease is ended here and
    its item released, before the maintenance loop would: the caller commits that."""
    held = item.lease_token == claim.token or is_gold(item)
    if claim.state != ClaimState.LIVE or not held:
        raise Gone("This claim has ended (expired or released); the item went back to the queue.")
    if claim.expires_at <= now:
        claim.state = ClaimState.EXPIRED
        if not is_gold(item):
            _release(item)
        session.flush()
        raise Gone("This claim expired; the item went back to the queue.")


def _release(item: Item) -> None:
    item.status = ItemStatus.PENDING
    item.lease_owner_id = None
    item.lease_token = None
    item.lease_expires_at = None


def _check_label(queue: Queue, label) -> str:
    if not isinstance(label, str) or not label.strip():
        raise ValidationFailed(
            "A decision needs a label.", [{"field": "label", "message": "a non-empty string"}]
        )
    if len(label) > 200:
        raise ValidationFailed(
            "Labels are at most 200 characters.", [{"field": "label", "message": "too long"}]
        )
    if queue.labels and label not in queue.labels:
        raise ValidationFailed(
            f"{label!r} is not one of this queue's labels.",
            [{"field": "label", "message": f"choose one of {', '.join(queue.labels)}"}],
        )
    return label


def typed_label(queue: Queue, text: str) -> str:
    """A label a reviewer typed, as the queue spells it: " Fraud " is "fraud". Text that
    matches none of the queue's labels is returned as typed (and refused by decide)."""
    text = text.strip()
    if queue.labels and text not in queue.labels:
        folded = {label.casefold(): label for label in queue.labels}
        return folded.get(text.casefold(), text)
    return text


def current_prediction(*, session: Session, item_id: int) -> Prediction | None:
    return session.scalar(
        select(Prediction)
        .where(col(Prediction.item_id) == item_id)
        .order_by(col(Prediction.id).desc())
        .limit(1)
    )


FEEDBACK = ("right", "wrong", "all_wrong")


def decide(
    *, session: Session, token: str, user: User, label, comment=None, model_feedback=None, now=None
) -> Decision:
    """Records the reviewer's answer for a claim; the same answer twice records one review.

    Raises Conflict for a different answer on a decided claim and Gone for a lost lease.
    """
    now = now or utcnow()
    claim, item = _claim_for(session, token, user)
    queue = session.get_one(Queue, item.queue_id)
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT):
        raise ValidationFailed(
            "A comment is text of at most 5000 characters.",
            [{"field": "comment", "message": "invalid comment"}],
        )
    previous = session.scalar(select(Review).where(col(Review.claim_id) == claim.id))
    if previous is not None:
        if previous.label == label:
            final = session.scalar(select(Label).where(col(Label.item_id) == item.id))
            return Decision(item=item, label=final, review=previous, outbox_id=None, repeated=True)
        raise AlreadyDecided(
            f"This claim was already decided as {previous.label!r}; a different answer needs a "
            "new claim or an adjudication.",
            previous_label=previous.label,
            external_id=item.external_id,
        )
    label = _check_label(queue, label)
    if model_feedback is not None and model_feedback not in FEEDBACK:
        raise ValidationFailed(
            "model_feedback is one of right, wrong, all_wrong.",
            [{"field": "model_feedback", "message": "unknown value"}],
        )
    check_still_held(session=session, claim=claim, item=item, now=now)

    # Rescoring leaves leased items alone, so the prediction now is the one the reviewer saw.
    prediction = current_prediction(session=session, item_id=id_of(item))
    review = Review(
        item_id=id_of(item),
        claim_id=id_of(claim),
        user_id=id_of(user),
        label=label,
        comment=comment or None,
        model_feedback=model_feedback or implied_feedback(prediction, label),
        created_at=now,
        shown=shown_of(prediction),
    )
    session.add(review)
    claim.state = ClaimState.DECIDED
    session.flush()
    return _settle(
        session=session, queue=queue, item=item, review=review, prediction=prediction, now=now
    )


# At most this many candidates are kept of what a reviewer was shown.
SHOWN_CANDIDATES = 50


def shown_of(prediction: Prediction | None) -> dict | None:
    """What the reviewer was shown of the model: the prediction, its version and source, and
    its candidates in their order (stored with the review and exported as `shown`)."""
    if prediction is None:
        return None
    return {
        "prediction_id": prediction.id,
        "model_version": prediction.model_version,
        "source": prediction.source,
        "candidates": [
            {"label": c["label"], "score": c.get("score")}
            for c in prediction.candidates[:SHOWN_CANDIDATES]
        ],
    }


def implied_feedback(prediction: Prediction | None, label: str) -> str | None:
    """What the answer says about the model when the reviewer did not say it explicitly."""
    if not prediction or not prediction.candidates:
        return None
    if prediction.candidates[0]["label"] == label:
        return "right"
    if any(c["label"] == label for c in prediction.candidates):
        return "wrong"
    return "all_wrong"


def _settle(
    *,
    session: Session,
    queue: Queue,
    item: Item,
    review: Review,
    prediction: Prediction | None,
    now,
) -> Decision:
    """Closes the item once it has all its reviews and they reach an answer under the
    queue's consensus rule; an unresolved item goes to adjudication (app.desk).
    `prediction` is the one the reviewer was shown (decide() read it)."""
    if is_gold(item):
        # A gold answer only measures the reviewer (app.desk.gold): the item never settles.
        return Decision(item=item, label=None, review=review, outbox_id=None)
    policy = policy_of(queue)
    reviews = list(
        session.execute(
            select(col(Review.user_id), col(Review.label), col(User.name))
            .join(User, col(User.id) == col(Review.user_id))
            .where(col(Review.item_id) == item.id)
            .order_by(col(Review.id))
        )
    )
    item.lease_owner_id = None
    item.lease_token = None
    item.lease_expires_at = None
    waiting = Decision(item=item, label=None, review=review, outbox_id=None)
    needed = reviews_needed(
        session=session, item_id=id_of(item), reviews_required=policy.reviews_required
    )
    if len(reviews) < needed:
        item.status = ItemStatus.PENDING
        session.flush()
        return waiting
    if len(reviews) == 1:
        why = second_review_reason(
            session=session,
            queue=queue,
            on_override=policy.second_review_on_override,
            below_accuracy=policy.second_review_below_accuracy,
            user_id=review.user_id,
            label=review.label,
            prediction=prediction,
        )
        if why is not None:
            ask_second_review(
                session=session, item_id=id_of(item), user_id=review.user_id, why=why, now=now
            )
            item.status = ItemStatus.PENDING
            item.route_reason = _truncated(f"{item.route_reason or ''}; second review: {why}")
            session.flush()
            return waiting
        value = review.label
    else:
        verdict = consensus(
            session=session,
            queue=queue,
            rule=policy.consensus,
            item_id=id_of(item),
            votes=[(r.user_id, r.label) for r in reviews],
        )
        if verdict.label is None:
            item.status = ItemStatus.ESCALATED
            item.route_reason = _truncated(
                f"{item.route_reason or ''}; reviewers disagreed ({verdict.why}): "
                "needs adjudication"
            )
            session.flush()
            return waiting
        value = verdict.label

    top = prediction.candidates[0] if prediction and prediction.candidates else None
    audited = item.route_decision == RouteDecision.AUDIT
    final = Label(
        item_id=id_of(item),
        queue_id=item.queue_id,
        value=value,
        source=LabelSource.AUDIT if audited else LabelSource.HUMAN,
        reviewers=[r.name for r in reviews],
        decided_at=now,
        model_version=prediction.model_version if prediction else None,
        model_label=top["label"] if top else None,
        model_score=top["score"] if top else None,
        model_feedback=implied_feedback(prediction, value)
        if value != review.label
        else review.model_feedback,
    )
    session.add(final)
    item.status = ItemStatus.DONE
    session.flush()
    after_answer(session=session, queue=queue, item_id=id_of(item), value=final.value)
    outbox = add_to_outbox(session=session, label=final)
    return Decision(item=item, label=final, review=review, outbox_id=outbox.id if outbox else None)


def _truncated(reason: str) -> str:
    """A route reason that fits its column (500), keeping its latest part."""
    reason = reason.removeprefix("; ")
    return reason if len(reason) <= 500 else "…" + reason[-499:]


def release(*, session: Session, token: str, user: User) -> Claim | None:
    """Gives the item back to the queue; returns the claim it ended, None when it had already
    ended (releasing twice is harmless)."""
    claim, item = _claim_for(session, token, user)
    if claim.state not in (ClaimState.LIVE, ClaimState.AHEAD):
        return None
    claim.state = ClaimState.RELEASED
    if item.lease_token == token:
        _release(item)
    session.flush()
    return claim


# Roles that see every review of an item whatever its state: they adjudicate or study.
SEE_ALL_REVIEWS = ("lead", "scientist", "admin")


def _blind_to_others(item: Item, viewer: User | None, reviewed: bool) -> bool:
    """Reviewing is blind: whoever may still answer the item sees no one else's answer."""
    if viewer is None or reviewed:
        return False
    if item.lease_owner_id == viewer.id:
        return True
    if viewer.role in SEE_ALL_REVIEWS:
        return False
    return item.status not in (ItemStatus.DONE, ItemStatus.AUTO_ACCEPTED)


def item_json(*, session: Session, item: Item, viewer: User | None = None) -> dict:
    """The API's view of one item, per API.md. Given the `viewer`, other reviewers' answers
    are left out while the viewer may still answer it (see _blind_to_others), and to a
    reviewer a gold item looks like any item (app.desk.gold.as_seen_by)."""
    prediction = current_prediction(session=session, item_id=id_of(item))
    reviews: list[tuple[Review, str]] = [
        (r, name)
        for r, name in session.execute(
            select(Review, col(User.name))
            .join(User, col(User.id) == col(Review.user_id))
            .where(col(Review.item_id) == item.id)
            .order_by(col(Review.id))
        )
    ]
    if viewer is not None and _blind_to_others(
        item, viewer, any(r.user_id == viewer.id for r, _ in reviews)
    ):
        reviews = [(r, name) for r, name in reviews if r.user_id == viewer.id]
    final = session.scalar(select(Label).where(col(Label.item_id) == item.id))
    data = {
        "external_id": item.external_id,
        "status": item.status,
        "priority": item.priority,
        "payload": item.payload,
        "prediction": (
            {
                "model_version": prediction.model_version,
                "source": prediction.source,
                "candidates": prediction.candidates,
                # The conformal set ({"coverage", "set_size"}) or the rule behind the answer.
                "detail": prediction.detail,
            }
            if prediction
            else None
        ),
        "route": {"decision": item.route_decision, "reason": item.route_reason},
        "reviews": [
            {
                "reviewer": name,
                "label": r.label,
                "comment": r.comment,
                "created_at": r.created_at.isoformat(),
            }
            for r, name in reviews
        ],
        "label": (
            {
                "value": final.value,
                "source": final.source,
                "decided_at": final.decided_at.isoformat(),
            }
            if final
            else None
        ),
        "created_at": item.created_at.isoformat(),
    }
    if viewer is not None and viewer.role not in SEE_ALL_REVIEWS and is_gold(item):
        return as_seen_by(
            data, item=item, viewer=viewer, queue=session.get_one(Queue, item.queue_id)
        )
    return data


def get_item(*, session: Session, queue: Queue, external_id: str) -> Item:
    item = session.scalar(
        select(Item).where(col(Item.queue_id) == queue.id, col(Item.external_id) == external_id)
    )
    if item is None:
        raise NotFound(f"No item {external_id!r} in queue {queue.name!r}.")
    return item
