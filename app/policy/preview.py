"""What a policy change would do, before it is saved: the queue's recent items routed again
under the current and the proposed policy (the same app.routing.decision.route_item that
routes arriving items), and the waiting items the proposed service level counts late."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session, col

from app.models import Item, Prediction, Queue, utcnow
from app.queues.service import Policy, policy_of, validate_policy_changes
from app.queues.sla import WAITING, nearing_before
from app.routing.decision import route_item
from app.states import RouteDecision

RECENT_ITEMS = 500


def _recent_predictions(session: Session, queue: Queue, last: int) -> list[tuple]:
    """(external_id, candidates, detail, created_at) of the newest prediction of each of the
    queue's `last` newest items that have one."""
    recent = (
        select(col(Item.id))
        .where(col(Item.queue_id) == queue.id)
        .order_by(col(Item.id).desc())
        .limit(last)
        .subquery()
    )
    newest = (
        select(func.max(col(Prediction.id)))
        .where(col(Prediction.item_id).in_(select(recent.c.id)))
        .group_by(col(Prediction.item_id))
    )
    return list(
        session.execute(
            select(
                col(Item.external_id),
                col(Prediction.candidates),
                col(Prediction.detail),
                col(Item.created_at),
            )
            .join(Item, col(Item.id) == col(Prediction.item_id))
            .where(col(Prediction.id).in_(newest))
        ).all()
    )


def _routes(policy: Policy, queue: Queue, rows: list[tuple], days: float | None) -> dict:
    counts: Counter = Counter()
    for external_id, candidates, detail, _ in rows:
        route = route_item(
            policy=policy,
            candidates=candidates or None,
            queue_name=queue.name,
            external_id=external_id,
            detail=detail,
        )
        counts[route.decision] += 1
    n = len(rows) or 1
    to_people = counts[RouteDecision.REVIEW] + counts[RouteDecision.AUDIT]
    reviews = to_people * policy.reviews_required
    return {
        "auto_accept_share": counts[RouteDecision.AUTO_ACCEPT] / n,
        "audit_share": counts[RouteDecision.AUDIT] / n,
        "review_share": counts[RouteDecision.REVIEW] / n,
        # Reviews people would give for every 100 items (each reviewed item needs
        # reviews_required of them), and per day at the recent items' arrival rate.
        "reviews_per_100_items": 100 * reviews / n,
        "reviews_per_day": reviews / days if days else None,
    }


def _sla_counts(session: Session, queue: Queue, sla_hours: float | None, now: datetime) -> dict:
    if sla_hours is None:
        return {"sla_hours": None, "waiting_late": None, "nearing": None}
    waiting = (
        select(func.count())
        .select_from(Item)
        .where(col(Item.queue_id) == queue.id, col(Item.status).in_(WAITING))
    )
    late = session.scalar(waiting.where(col(Item.created_at) < now - timedelta(hours=sla_hours)))
    nearing = session.scalar(
        waiting.where(col(Item.created_at) <= nearing_before(sla_hours=sla_hours, now=now))
    )
    return {"sla_hours": sla_hours, "waiting_late": late or 0, "nearing": nearing or 0}


def preview_policy(
    *,
    session: Session,
    queue: Queue,
    changes: dict,
    last: int = RECENT_ITEMS,
    now: datetime | None = None,
) -> dict:
    """The effect of `changes` on the queue's `last` newest items with a prediction, under
    the current and the proposed policy. Validated as saving would (ValidationFailed), and
    nothing is saved:

    {"items", "days", "changed": [fields], "current": {...}, "proposed": {...}} where each side
    has the shares auto-accepted / audited / reviewed, reviews per 100 items and per day, and
    the waiting items past (or nearing) the deadline under its sla_hours.
    """
    now = now or utcnow()
    current = policy_of(queue)
    proposed = validate_policy_changes(queue=queue, changes=changes)
    rows = _recent_predictions(session, queue, last)
    days = None
    if len(rows) > 1:
        span = max(r[3] for r in rows) - min(r[3] for r in rows)
        days = span.total_seconds() / 86400 or None
    before, after = current.model_dump(), proposed.model_dump()
    out = {"items": len(rows), "days": days, "changed": [f for f in after if before[f] != after[f]]}
    for side, policy in (("current", current), ("proposed", proposed)):
        out[side] = {
            **_routes(policy, queue, rows, days),
            **_sla_counts(session, queue, policy.sla_hours, now),
        }
    return out
