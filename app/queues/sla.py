"""Service levels: a queue's `sla_hours` gives each item a deadline (its arrival plus
sla_hours). Items past NEARING_SHARE of it come before the queue's order in the claim
(app.review.service), and items decided after it, or still waiting past it, are breaches.

The deadline is the queue's current `sla_hours` applied to every item, also to items
decided before it was set or changed: a breach count answers "against today's target".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, func, select, text
from sqlmodel import Session, col

from app.db import is_sqlite
from app.models import Item, Queue, UTCDateTime, utcnow
from app.queues.service import policy_of
from app.states import ItemStatus

# An item comes before the queue's order once it has waited this share of the SLA.
NEARING_SHARE = 0.75
# Items not decided yet: waiting, held by a reviewer, or sent to a lead.
WAITING = (ItemStatus.PENDING, ItemStatus.IN_REVIEW, ItemStatus.ESCALATED)


def nearing_before(*, sla_hours: float, now: datetime) -> datetime:
    """Items that arrived at or before this moment are nearing their deadline."""
    return now - timedelta(hours=sla_hours * NEARING_SHARE)


def _late_sql(session: Session) -> str:
    # The deadline is per item (arrival + SLA), so the comparison is in SQL, per dialect.
    return (
        "(julianday(l.decided_at) - julianday(i.created_at)) * 86400.0 > :seconds"
        if is_sqlite(session)
        else "l.decided_at > i.created_at + :seconds * interval '1 second'"
    )


def _decided_late(session: Session, queue_id: int, seconds: float) -> int:
    late = _late_sql(session)
    return (
        session.execute(
            text(
                "SELECT count(*) FROM final_label AS l JOIN item AS i ON i.id = l.item_id"
                f" WHERE l.queue_id = :queue_id AND {late}"
            ),
            {"queue_id": queue_id, "seconds": seconds},
        ).scalar()
        or 0
    )


def sla_status(*, session: Session, queue: Queue, now: datetime | None = None) -> dict:
    """The queue's service level now: its target, the oldest undecided item's age against
    it, and the breaches (decided late, still waiting past the deadline, nearing it).

    {"sla_hours", "nearing_share", "oldest_waiting_seconds", "oldest_share",
     "breaches": {"decided_late", "waiting_late", "total"}, "nearing", "words"}
    Counts are None when the queue has no SLA.
    """
    now = now or utcnow()
    sla_hours = policy_of(queue).sla_hours
    oldest = session.scalar(
        select(func.min(col(Item.created_at))).where(
            col(Item.queue_id) == queue.id, col(Item.status).in_(WAITING)
        )
    )
    age = (now - oldest).total_seconds() if oldest is not None else None
    out: dict = {
        "sla_hours": sla_hours,
        "nearing_share": NEARING_SHARE,
        "oldest_waiting_seconds": age,
        "oldest_share": None,
        "breaches": {"decided_late": None, "waiting_late": None, "total": None},
        "nearing": None,
    }
    if sla_hours is not None:
        seconds = sla_hours * 3600
        waiting = (
            select(func.count())
            .select_from(Item)
            .where(col(Item.queue_id) == queue.id, col(Item.status).in_(WAITING))
        )
        late = session.scalar(
            waiting.where(col(Item.created_at) < now - timedelta(seconds=seconds))
        )
        nearing = session.scalar(
            waiting.where(col(Item.created_at) <= nearing_before(sla_hours=sla_hours, now=now))
        )
        decided_late = _decided_late(session, queue.id or 0, seconds)
        out["breaches"] = {
            "decided_late": decided_late,
            "waiting_late": late or 0,
            "total": decided_late + (late or 0),
        }
        out["nearing"] = nearing or 0
        if age is not None:
            out["oldest_share"] = age / seconds
    out["words"] = sla_words(age_seconds=age, sla_hours=sla_hours)
    return out


def hours_words(hours: float) -> str:
    """A duration in hours as a person says it: "45 min", "4 h", "2.5 h", "3 days"."""
    if hours < 1.5:
        return f"{round(hours * 60)} min"
    if hours < 48:
        return f"{hours:.1f}".removesuffix(".0") + " h"
    return f"{hours / 24:.1f}".removesuffix(".0") + " days"


def sla_words(*, age_seconds: float | None, sla_hours: float | None) -> str:
    """The oldest undecided item's age against the SLA, in plain words."""
    if age_seconds is None:
        return "Nothing is waiting."
    age = hours_words(age_seconds / 3600)
    if sla_hours is None:
        return f"The oldest item has waited {age}; the queue has no service level."
    target = hours_words(sla_hours)
    share = age_seconds / (sla_hours * 3600)
    if share > 1:
        over = hours_words(age_seconds / 3600 - sla_hours)
        return f"The oldest item has waited {age}: {over} past the {target} target."
    if share >= NEARING_SHARE:
        return (
            f"The oldest item has waited {age} of the {target} target: it is nearing its "
            "deadline and comes first."
        )
    return f"The oldest item has waited {age} of the {target} target."


def sla_breaches(*, session: Session, now: datetime | None = None) -> list[dict]:
    """Breaches of every queue with an SLA, for charts and metrics:
    [{"queue", "sla_hours", "decided_late", "waiting_late", "nearing"}]."""
    now = now or utcnow()
    rows = []
    for queue in session.scalars(select(Queue).order_by(col(Queue.name))):
        if policy_of(queue).sla_hours is None:
            continue
        status = sla_status(session=session, queue=queue, now=now)
        rows.append(
            {
                "queue": queue.name,
                "sla_hours": status["sla_hours"],
                "decided_late": status["breaches"]["decided_late"],
                "waiting_late": status["breaches"]["waiting_late"],
                "nearing": status["nearing"],
            }
        )
    return rows


def sla_by_day(
    *, session: Session, queue: Queue, days: int = 14, now: datetime | None = None
) -> list[dict]:
    """Decisions per UTC day over the last `days` days and how many came after their
    deadline, oldest day first, days without decisions included:
    [{"day": "2026-12-01", "decided", "decided_late"}] (decided_late None without an SLA)."""
    now = now or utcnow()
    sla_hours = policy_of(queue).sla_hours
    first = (now - timedelta(days=days - 1)).date()
    day = (
        "date(l.decided_at)"
        if is_sqlite(session)
        else "to_char(l.decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    )
    late = _late_sql(session) if sla_hours is not None else "1 = 0"
    rows = session.execute(
        text(
            f"SELECT {day} AS day, count(*) AS decided,"
            f" sum(CASE WHEN {late} THEN 1 ELSE 0 END) AS late"
            " FROM final_label AS l JOIN item AS i ON i.id = l.item_id"
            " WHERE l.queue_id = :queue_id AND l.decided_at >= :since"
            f" GROUP BY {day}"
        ).bindparams(bindparam("since", type_=UTCDateTime())),
        {
            "queue_id": queue.id,
            "since": datetime(first.year, first.month, first.day, tzinfo=UTC),
            "seconds": (sla_hours or 0) * 3600,
        },
    ).all()
    found = {str(r.day): (r.decided, r.late or 0) for r in rows}
    out = []
    for n in range(days):
        key = (first + timedelta(days=n)).isoformat()
        decided, late_n = found.get(key, (0, 0))
        out.append(
            {
                "day": key,
                "decided": decided,
                "decided_late": late_n if sla_hours is not None else None,
            }
        )
    return out
