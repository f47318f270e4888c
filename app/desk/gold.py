"""Gold items: items whose answer is known, mixed into reviewers' streams to measure them.

A gold item's status is `gold`, so the claim statement (pending items only) never hands it
out; it is served by its own small statement below, before the claim statement, at the
queue's `gold_rate`. Its lease lives on the claim alone (the item row keeps no lease), so
several reviewers can hold it at once; each answers it at most once. Answers are ordinary
reviews, but a gold item never settles: no label, no training example, no audit-frame entry,
no export. To the reviewer it looks like any item (see `as_seen_by`).
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select, text
from sqlmodel import Session, col
from statsmodels.stats.proportion import proportion_confint

from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.models import (
    AuditFrame,
    Claim,
    GoldItem,
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
from app.queues.service import Policy, policy_of
from app.routing.decision import Route, audit_reason
from app.routing.placement import Placement
from app.states import ClaimState, ItemStatus, RouteDecision

# Who may mark and unmark gold items.
MARKERS = ("lead", "admin")
INTERVAL_ALPHA = 0.05
INTERVAL_METHOD = "beta"  # Clopper-Pearson: exact, never narrower than it should be


def interval(hits: int, n: int) -> dict:
    """{"estimate", "lower", "upper", "n", "method"} for `hits` out of `n` (Clopper-Pearson,
    95%); the figures are None when n is 0."""
    if n == 0:
        return {"estimate": None, "lower": None, "upper": None, "n": 0, "method": "clopper-pearson"}
    lower, upper = proportion_confint(hits, n, alpha=INTERVAL_ALPHA, method=INTERVAL_METHOD)
    return {
        "estimate": round(hits / n, 4),
        "lower": round(float(lower), 4),
        "upper": round(float(upper), 4),
        "n": n,
        "method": "clopper-pearson",
    }


def is_gold(item: Item) -> bool:
    return item.status == ItemStatus.GOLD


def check_marker(user: User) -> None:
    """403 unless the user may mark gold items (leads, admins)."""
    if user.role not in MARKERS:
        raise Forbidden(f"Your role ({user.role}) may not mark gold items; leads and admins may.")


def check_gold_label(queue: Queue, label, field: str = "label") -> str:
    """The known answer, which must be one of the queue's labels (when it has a list)."""
    if not isinstance(label, str) or not label.strip() or len(label) > 200:
        raise ValidationFailed(
            "A gold item needs its known answer: a label of 1 to 200 characters.",
            [{"field": field, "message": "a non-empty string of at most 200 characters"}],
        )
    if queue.labels and label not in queue.labels:
        raise ValidationFailed(
            f"{label!r} is not one of this queue's labels.",
            [{"field": field, "message": f"choose one of {', '.join(queue.labels)}"}],
        )
    return label


def _locked_item(session: Session, queue: Queue, external_id: str) -> Item:
    item = session.scalar(
        select(Item)
        .where(col(Item.queue_id) == queue.id, col(Item.external_id) == external_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if item is None:
        raise NotFound(f"No item {external_id!r} in queue {queue.name!r}.")
    return item


def mark_gold(
    *, session: Session, queue: Queue, user: User, external_id: str, label, now=None
) -> GoldItem:
    """Makes a waiting item a gold item with the known answer `label` (or changes the answer
    of a gold item). Only a waiting item nobody has answered can become gold: an answered,
    leased, audited or labelled one would take part in the labelled data already (409)."""
    check_marker(user)
    now = now or utcnow()
    label = check_gold_label(queue, label)
    item = _locked_item(session, queue, external_id)
    gold = session.get(GoldItem, item.id)
    if gold is not None:
        gold.label = label
        gold.retired_at = None
        session.flush()
        return gold
    if item.status != ItemStatus.PENDING:
        raise Conflict(
            f"Item {external_id!r} is {item.status}: only a waiting item can become a gold item."
        )
    answered = session.scalar(select(col(Review.id)).where(col(Review.item_id) == item.id).limit(1))
    audited = session.scalar(
        select(col(AuditFrame.id)).where(col(AuditFrame.item_id) == item.id).limit(1)
    )
    labelled = session.scalar(select(col(Label.id)).where(col(Label.item_id) == item.id).limit(1))
    if answered is not None or audited is not None or labelled is not None:
        raise Conflict(
            f"Item {external_id!r} already has answers or measures the model (audit): choose "
            "another item for gold."
        )
    item.status = ItemStatus.GOLD
    gold = GoldItem(
        item_id=id_of(item),
        queue_id=id_of(queue),
        label=label,
        marked_by_id=user.id,
        created_at=now,
    )
    session.add(gold)
    session.flush()
    return gold


def unmark_gold(*, session: Session, queue: Queue, user: User, external_id: str, now=None) -> str:
    """Stops using an item as gold. Unanswered, it goes back to the queue as an ordinary item
    ("returned"); answered, it is retired ("retired"): served and counted no more, and still
    kept out of the labelled data, since reviewers answered it as a test."""
    check_marker(user)
    now = now or utcnow()
    item = _locked_item(session, queue, external_id)
    gold = session.get(GoldItem, item.id)
    if gold is None or item.status != ItemStatus.GOLD:
        raise NotFound(f"Item {external_id!r} is not a gold item.")
    answered = session.scalar(select(col(Review.id)).where(col(Review.item_id) == item.id).limit(1))
    if answered is None:
        session.execute(delete(GoldItem).where(col(GoldItem.item_id) == item.id))
        item.status = ItemStatus.PENDING
        # Claims reviewers hold on it end with the gold status (check_still_held: 410).
        session.flush()
        return "returned"
    if gold.retired_at is None:
        gold.retired_at = now
    session.flush()
    return "retired"


def gold_rows(*, queue_id: int, created: dict[str, int], gold: dict[str, str], now) -> list[dict]:
    """gold_item rows for the items an ingest batch created with a `gold_label`."""
    return [
        {
            "item_id": created[ext],
            "queue_id": queue_id,
            "label": label,
            "marked_by_id": None,
            "created_at": now,
            "retired_at": None,
        }
        for ext, label in gold.items()
        if ext in created
    ]


def gold_placement(placement: Placement, *, policy: Policy, candidates) -> Placement:
    """A gold item always goes to people (routed `review`), and outside the audit frame.
    One the model would have auto-accepted says what an audited item says, so the reason
    gives nothing away (with no audits at all, an item that reaches a person anyway can)."""
    planned = placement.planned
    if placement.route.decision == RouteDecision.REVIEW:  # planned so, or auto-accept paused
        return Placement(placement.route, placement.route)
    if planned.decision == RouteDecision.AUDIT:
        reason = planned.reason
    else:
        top = float(candidates[0]["score"])
        reason = audit_reason(policy.audit_rate_for(top), f"score {top:.2f}")
    route = Route(RouteDecision.REVIEW, reason)
    return Placement(route, route)


def _gold_sql(exclude: bool) -> str:
    # The queue's live gold items (ix_gold_item_serving) this reviewer has neither answered,
    # escalated (as an ordinary escalated item, it must not come back) nor holds right now.
    # Nothing on the item row is leased: other reviewers may hold it.
    skipped = " AND g.item_id NOT IN :excluded" if exclude else ""
    return f"""
        SELECT g.item_id FROM gold_item AS g
         WHERE g.queue_id = :queue_id AND g.retired_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM review AS r
                            WHERE r.item_id = g.item_id AND r.user_id = :user_id)
           AND NOT EXISTS (SELECT 1 FROM claim AS c
                            WHERE c.item_id = g.item_id AND c.user_id = :user_id
                              AND (c.state = '{ClaimState.ESCALATED}'
                                   OR (c.state IN ('{ClaimState.LIVE}', '{ClaimState.AHEAD}')
                                       AND c.expires_at > :now))){skipped}
         ORDER BY g.item_id
         LIMIT 1
    """


def claim_gold(
    *,
    session: Session,
    queue: Queue,
    user: User,
    policy: Policy,
    token: str,
    now: datetime,
    expires_at: datetime,
    state: ClaimState,
    exclude_item_ids=(),
    draw=random.random,
) -> Claim | None:
    """With chance `gold_rate`, a claim on a gold item the reviewer has not answered yet;
    None otherwise (the ordinary claim follows)."""
    if policy.gold_rate <= 0 or draw() >= policy.gold_rate:
        return None
    # One gold claim at a time per reviewer (two tabs claiming at once): the user's row is
    # the lock on PostgreSQL; SQLite's BEGIN IMMEDIATE serialises writers anyway.
    session.execute(select(col(User.id)).where(col(User.id) == user.id).with_for_update())
    exclude = list(exclude_item_ids)
    stmt = text(_gold_sql(bool(exclude))).bindparams(bindparam("now", type_=UTCDateTime()))
    params: dict = {"queue_id": queue.id, "user_id": user.id, "now": now}
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


def as_seen_by(data: dict, *, item: Item, viewer: User, queue: Queue) -> dict:
    """The API's view of a gold item as a reviewer would see any item: claimed (`in_review`)
    until they answer, then as their answer settled it (`done` with their label when one
    review is required, else `pending`), with their own review only."""
    if not is_gold(item):
        return data
    mine = [r for r in data["reviews"] if r["reviewer"] == viewer.name]
    seen = {**data, "status": ItemStatus.IN_REVIEW, "reviews": mine, "label": None}
    if mine:
        if policy_of(queue).reviews_required == 1:
            last = mine[-1]
            seen["status"] = ItemStatus.DONE
            seen["label"] = {
                "value": last["label"],
                "source": "human",
                "decided_at": last["created_at"],
            }
        else:
            seen["status"] = ItemStatus.PENDING
    return seen


def _answers(session: Session, queue: Queue, user_id: int | None = None):
    """(reviewer id, reviewer name, answer, known answer, item id) of every answer on the
    queue's live gold items."""
    stmt = (
        select(
            col(Review.user_id),
            col(User.name),
            col(Review.label),
            col(GoldItem.label),
            col(GoldItem.item_id),
        )
        .join(GoldItem, col(GoldItem.item_id) == col(Review.item_id))
        .join(User, col(User.id) == col(Review.user_id))
        .where(col(GoldItem.queue_id) == queue.id, col(GoldItem.retired_at).is_(None))
        .order_by(col(Review.id))
    )
    if user_id is not None:
        stmt = stmt.where(col(Review.user_id) == user_id)
    return session.execute(stmt).all()


def _model_answers(session: Session, item_ids: set[int]) -> dict[int, str]:
    """The model's top answer on each item (its newest prediction), where there is one."""
    if not item_ids:
        return {}
    newest = (
        select(func.max(col(Prediction.id)))
        .where(col(Prediction.item_id).in_(item_ids))
        .group_by(col(Prediction.item_id))
    )
    rows = session.execute(
        select(col(Prediction.item_id), col(Prediction.candidates)).where(
            col(Prediction.id).in_(newest)
        )
    )
    return {item_id: cands[0]["label"] for item_id, cands in rows if cands}


def gold_hits(*, session: Session, queue: Queue, user_id: int) -> list[bool]:
    """Whether each of the reviewer's answers on the queue's live gold items was right."""
    return [answer == known for _u, _n, answer, known, _i in _answers(session, queue, user_id)]


def gold_accuracy(*, session: Session, queue: Queue, user_id: int) -> dict:
    """One reviewer's accuracy on the queue's gold items, with its interval."""
    hits = gold_hits(session=session, queue=queue, user_id=user_id)
    return interval(sum(hits), len(hits))


def gold_report(*, session: Session, queue: Queue) -> dict:
    """Gold items, each reviewer's accuracy on them, and automation bias: on gold items
    where the model's top answer was wrong, how often reviewers followed it anyway."""
    answers = _answers(session, queue)
    golds = session.execute(
        select(GoldItem, col(Item.external_id))
        .join(Item, col(Item.id) == col(GoldItem.item_id))
        .where(col(GoldItem.queue_id) == queue.id)
        .order_by(col(GoldItem.item_id))
    ).all()
    model = _model_answers(session, {g.item_id for g, _ext in golds})
    per_item: dict[int, list[bool]] = defaultdict(list)
    hits: dict[tuple[int, str], list[bool]] = defaultdict(list)
    followed: dict[tuple[int, str], list[bool]] = defaultdict(list)
    for user_id, name, answer, known, item_id in answers:
        per_item[item_id].append(answer == known)
        hits[(user_id, name)].append(answer == known)
        top = model.get(item_id)
        if top is not None and top != known:
            followed[(user_id, name)].append(answer == top)
    everyone_hits = [h for hs in hits.values() for h in hs]
    everyone_followed = [f for fs in followed.values() for f in fs]
    return {
        "queue": queue.name,
        "gold_rate": policy_of(queue).gold_rate,
        "items": [
            {
                "external_id": ext,
                "label": g.label,
                "model_label": model.get(g.item_id),
                "answers": len(per_item[g.item_id]),
                "correct": sum(per_item[g.item_id]),
                "retired": g.retired_at is not None,
                "created_at": g.created_at.isoformat(),
            }
            for g, ext in golds
        ],
        "accuracy": interval(sum(everyone_hits), len(everyone_hits)),
        "automation_bias": interval(sum(everyone_followed), len(everyone_followed)),
        "reviewers": [
            {
                "reviewer": name,
                "accuracy": interval(sum(hs), len(hs)),
                "automation_bias": interval(sum(followed[(uid, name)]), len(followed[(uid, name)])),
            }
            for (uid, name), hs in sorted(hits.items(), key=lambda kv: kv[0][1])
        ],
    }
