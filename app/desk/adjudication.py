"""The lead's adjudication list: escalated items, reviewers' disagreements and flags, and
the lead's decision, which is the item's final label (source `adjudicated`).

A flagged item usually has a label already (the reviewer still answered it). Adjudicating
it with the same label confirms the label and closes the flag; with another label, the
lead's label replaces it while no model has trained on it (409 after that, as a reopen).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from app.desk.consensus import SECOND_REVIEW
from app.errors import Conflict, NotFound, ValidationFailed
from app.learning.feedback import add_to_outbox
from app.models import (
    Item,
    ItemEvent,
    Label,
    Outbox,
    Prediction,
    Queue,
    Review,
    TrainingExample,
    User,
    id_of,
    utcnow,
)
from app.states import ItemStatus, LabelSource
from app.trust.alarms import after_answer

ADJUDICATE = "adjudicate"  # the ItemEvent kind of a lead's decision (its comment: the why)
MAX_COMMENT = 2000
LIST_LIMIT = 100
# Settled items whose flag still waits for a lead; items still under review wait for it.
SETTLED = (ItemStatus.DONE, ItemStatus.AUTO_ACCEPTED)


def _open_flags():
    """Flag events no adjudication came after."""
    later = aliased(ItemEvent)
    return select(col(ItemEvent.item_id)).where(
        col(ItemEvent.kind) == "flag",
        ~exists().where(
            col(later.item_id) == col(ItemEvent.item_id),
            col(later.kind) == ADJUDICATE,
            col(later.id) > col(ItemEvent.id),
        ),
    )


def _waiting_condition():
    return or_(
        col(Item.status) == ItemStatus.ESCALATED,
        and_(col(Item.status).in_(SETTLED), col(Item.id).in_(_open_flags())),
    )


def waiting_counts(*, session: Session, queue_ids: list[int]) -> dict[int, int]:
    """Items waiting for a lead, per queue, in one grouped query."""
    counts = dict.fromkeys(queue_ids, 0)
    if queue_ids:
        for qid, n in session.execute(
            select(col(Item.queue_id), func.count())
            .where(col(Item.queue_id).in_(queue_ids), _waiting_condition())
            .group_by(col(Item.queue_id))
        ):
            counts[qid] = n
    return counts


def _newest_prediction(session: Session, item_id: int) -> Prediction | None:
    return session.scalar(
        select(Prediction)
        .where(col(Prediction.item_id) == item_id)
        .order_by(col(Prediction.id).desc())
        .limit(1)
    )


def _events(session: Session, item_ids: list[int]) -> dict[int, list[tuple[ItemEvent, str]]]:
    out: dict[int, list[tuple[ItemEvent, str]]] = {i: [] for i in item_ids}
    for event, name in session.execute(
        select(ItemEvent, col(User.name))
        .join(User, col(User.id) == col(ItemEvent.user_id))
        .where(
            col(ItemEvent.item_id).in_(item_ids),
            col(ItemEvent.kind).in_(("escalate", "flag", SECOND_REVIEW, ADJUDICATE)),
        )
        .order_by(col(ItemEvent.id))
    ):
        out[event.item_id].append((event, name))
    return out


def _reasons(item: Item, n_reviews: int, events: list[tuple[ItemEvent, str]]) -> list[dict]:
    """Why the item waits for a lead, oldest first."""
    reasons = []
    for event, name in events:
        if event.kind == "escalate":
            reasons.append(_reason("escalated", event, name))
        elif event.kind == "flag":
            reasons.append(_reason("flagged", event, name))
        elif event.kind == ADJUDICATE:
            reasons.clear()  # what came before was answered by a lead
    if item.status == ItemStatus.ESCALATED and n_reviews > 1:
        # The route reason's latest part says how the reviews failed to agree.
        parts = (item.route_reason or "").split("; ")
        why = next((p for p in reversed(parts) if p.startswith("reviewers disagreed")), None)
        reasons.append({"kind": "disagreement", "by": None, "text": why, "at": None})
    return reasons


def _reason(kind: str, event: ItemEvent, name: str) -> dict:
    return {"kind": kind, "by": name, "text": event.comment, "at": event.created_at.isoformat()}


def adjudication_list(
    *, session: Session, queue: Queue, limit: int = LIST_LIMIT, external_id: str | None = None
) -> list[dict]:
    """The items waiting for a lead (or just `external_id`, if it waits), oldest first,
    each with everything a lead needs: every review (who, answer, comment, when, what they
    were shown), why it waits, flags and escalations, the model's answers, and the current
    label when there is one."""
    stmt = (
        select(Item)
        .where(col(Item.queue_id) == queue.id, _waiting_condition())
        .order_by(col(Item.id))
        .limit(limit)
    )
    if external_id is not None:
        stmt = stmt.where(col(Item.external_id) == external_id)
    items = list(session.scalars(stmt))
    ids = [id_of(i) for i in items]
    if not ids:
        return []
    reviews: dict[int, list[dict]] = {i: [] for i in ids}
    for r, name in session.execute(
        select(Review, col(User.name))
        .join(User, col(User.id) == col(Review.user_id))
        .where(col(Review.item_id).in_(ids))
        .order_by(col(Review.id))
    ):
        reviews[r.item_id].append(
            {
                "reviewer": name,
                "label": r.label,
                "comment": r.comment,
                "model_feedback": r.model_feedback,
                "created_at": r.created_at.isoformat(),
                "shown": r.shown,
            }
        )
    labels = {
        lab.item_id: lab
        for lab in session.scalars(select(Label).where(col(Label.item_id).in_(ids)))
    }
    events = _events(session, ids)
    entries = []
    for item in items:
        prediction = _newest_prediction(session, id_of(item))
        label = labels.get(id_of(item))
        entries.append(
            {
                "external_id": item.external_id,
                "status": item.status,
                "payload": item.payload,
                "reasons": _reasons(item, len(reviews[id_of(item)]), events[id_of(item)]),
                "route": {"decision": item.route_decision, "reason": item.route_reason},
                "reviews": reviews[id_of(item)],
                "flags": [
                    {"by": n, "comment": e.comment, "at": e.created_at.isoformat()}
                    for e, n in events[id_of(item)]
                    if e.kind == "flag"
                ],
                "second_reviews": [
                    e.comment for e, _ in events[id_of(item)] if e.kind == SECOND_REVIEW
                ],
                "prediction": (
                    {
                        "id": prediction.id,
                        "model_version": prediction.model_version,
                        "source": prediction.source,
                        "candidates": prediction.candidates,
                    }
                    if prediction
                    else None
                ),
                "label": (
                    {"value": label.value, "source": label.source, "reviewers": label.reviewers}
                    if label
                    else None
                ),
                "created_at": item.created_at.isoformat(),
            }
        )
    return entries


@dataclass
class Adjudication:
    item: Item
    label: Label
    # "decided" (an escalated or disputed item got its label), "confirmed" (a flagged
    # item's label stands), "replaced" (a flagged item's label was changed).
    outcome: str
    previous_label: str | None
    outbox_id: int | None


def _check_label(queue: Queue, label) -> str:
    if not isinstance(label, str) or not label.strip() or len(label) > 200:
        raise ValidationFailed(
            "An adjudication needs a label of 1 to 200 characters.",
            [{"field": "label", "message": "a non-empty string of at most 200 characters"}],
        )
    if queue.labels and label not in queue.labels:
        raise ValidationFailed(
            f"{label!r} is not one of this queue's labels.",
            [{"field": "label", "message": f"choose one of {', '.join(queue.labels)}"}],
        )
    return label


def _check_comment(comment) -> str | None:
    if comment is None:
        return None
    if not isinstance(comment, str) or len(comment.strip()) > MAX_COMMENT:
        raise ValidationFailed(
            f"A comment is text of at most {MAX_COMMENT} characters.",
            [{"field": "comment", "message": "invalid comment"}],
        )
    return comment.strip() or None


def _feedback(prediction: Prediction | None, label: str) -> str | None:
    if not prediction or not prediction.candidates:
        return None
    if prediction.candidates[0]["label"] == label:
        return "right"
    return "wrong" if any(c["label"] == label for c in prediction.candidates) else "all_wrong"


def _has_open_flag(session: Session, item_id: int) -> bool:
    query = _open_flags().where(col(ItemEvent.item_id) == item_id).limit(1)
    return session.scalar(query) is not None


def adjudicate(
    *, session: Session, queue: Queue, external_id: str, user: User, label, comment=None, now=None
) -> Adjudication:
    """The lead's final answer for an item waiting for one (409 otherwise).

    The item row is locked first, so of two leads deciding the same item at once one
    decides and the other finds it decided (409); the label's unique item keeps it single.
    """
    now = now or utcnow()
    label = _check_label(queue, label)
    comment = _check_comment(comment)
    item = session.scalar(
        select(Item)
        .where(col(Item.queue_id) == queue.id, col(Item.external_id) == external_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if item is None:
        raise NotFound(f"No item {external_id!r} in queue {queue.name!r}.")
    item_id = id_of(item)
    prediction = _newest_prediction(session, item_id)
    existing = session.scalar(select(Label).where(col(Label.item_id) == item_id))
    if item.status == ItemStatus.ESCALATED and existing is None:
        outcome, previous = "decided", None
    elif item.status in SETTLED and existing is not None and _has_open_flag(session, item_id):
        previous = existing.value
        if existing.value == label:
            _record(session, item_id, user, comment, now)
            session.flush()
            return Adjudication(item, existing, "confirmed", previous, None)
        _drop_untrained(session, existing)
        outcome = "replaced"
    else:
        raise Conflict(
            f"{external_id!r} is not waiting for a lead (it is {item.status.replace('_', ' ')})."
        )
    reviewers = list(
        session.scalars(
            select(col(User.name))
            .join(Review, col(Review.user_id) == col(User.id))
            .where(col(Review.item_id) == item_id)
            .order_by(col(Review.id))
        )
    )
    top = prediction.candidates[0] if prediction and prediction.candidates else None
    final = Label(
        item_id=item_id,
        queue_id=id_of(queue),
        value=label,
        source=LabelSource.ADJUDICATED,
        reviewers=[*reviewers, user.name],
        decided_at=now,
        model_version=prediction.model_version if prediction else None,
        model_label=top["label"] if top else None,
        model_score=top.get("score") if top else None,
        model_feedback=_feedback(prediction, label),
    )
    session.add(final)
    item.status = ItemStatus.DONE
    _record(session, item_id, user, comment, now)
    session.flush()
    after_answer(session=session, queue=queue, item_id=item_id, value=label)
    outbox = add_to_outbox(session=session, label=final)
    return Adjudication(item, final, outcome, previous, outbox.id if outbox else None)


def _record(session: Session, item_id: int, user: User, comment: str | None, now) -> None:
    session.add(
        ItemEvent(
            item_id=item_id, user_id=id_of(user), kind=ADJUDICATE, comment=comment, created_at=now
        )
    )


def _drop_untrained(session: Session, label: Label) -> None:
    """Removes a label no model has trained on, with its training example and outbox rows;
    409 once one has (the label is then part of a model's history)."""
    # Locked first: a training run marking the example used waits, or has committed.
    example = session.execute(
        select(col(TrainingExample.id), col(TrainingExample.used_by_version_id))
        .where(col(TrainingExample.label_id) == label.id)
        .with_for_update()
    ).first()
    if example is not None and example.used_by_version_id is not None:
        raise Conflict(
            f"A model has already trained on the label {label.value!r}; it stays. "
            "To close the flag, adjudicate with that label."
        )
    session.execute(delete(TrainingExample).where(col(TrainingExample.label_id) == label.id))
    session.execute(delete(Outbox).where(col(Outbox.label_id) == label.id))
    session.delete(label)
    session.flush()


def outcomes_for(*, session: Session, item_ids: list[int]) -> dict[int, dict]:
    """What became of items a reviewer answered (My work): the final label, and for a
    lead's decision who decided and why; or that it waits for a lead."""
    if not item_ids:
        return {}
    out: dict[int, dict] = {}
    for item_id, status in session.execute(
        select(col(Item.id), col(Item.status)).where(
            col(Item.id).in_(item_ids), col(Item.status) == ItemStatus.ESCALATED
        )
    ):
        out[item_id] = {"waiting": True, "status": status}
    for lab in session.scalars(select(Label).where(col(Label.item_id).in_(item_ids))):
        out[lab.item_id] = {"waiting": False, "value": lab.value, "source": lab.source}
    decided: dict[int, tuple[str, str | None, datetime]] = {}
    for event, name in session.execute(
        select(ItemEvent, col(User.name))
        .join(User, col(User.id) == col(ItemEvent.user_id))
        .where(col(ItemEvent.item_id).in_(item_ids), col(ItemEvent.kind) == ADJUDICATE)
        .order_by(col(ItemEvent.id))
    ):
        decided[event.item_id] = (name, event.comment, event.created_at)
    for item_id, (name, comment, at) in decided.items():
        if item_id in out:
            out[item_id].update(lead=name, lead_comment=comment, lead_at=at)
    return out
