"""A queue's automation events (alarms raised and cleared, auto-accept paused and resumed)
and the state they add up to: the newest event of each pair decides."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session, col

from app.models import Queue, QueueEvent, User, id_of, utcnow
from app.states import QueueEventKind

PAUSE_KINDS = (QueueEventKind.AUTO_ACCEPT_PAUSED, QueueEventKind.AUTO_ACCEPT_RESUMED)
ALARM_KINDS = (QueueEventKind.ALARM_RAISED, QueueEventKind.ALARM_CLEARED)


def record(
    *,
    session: Session,
    queue: Queue,
    kind: QueueEventKind,
    reason: str,
    alarm: str | None = None,
    user: User | None = None,
) -> QueueEvent:
    event = QueueEvent(
        queue_id=id_of(queue),
        kind=kind,
        alarm=alarm,
        user_id=id_of(user) if user is not None else None,
        reason=reason[:2000],
        created_at=utcnow(),
    )
    session.add(event)
    session.flush()
    return event


def pause_state(*, session: Session, queue: Queue) -> dict | None:
    """{"since", "reason", "alarm"} while auto-accept is paused, else None: one index probe."""
    last = session.scalar(
        select(QueueEvent)
        .where(col(QueueEvent.queue_id) == queue.id, col(QueueEvent.kind).in_(PAUSE_KINDS))
        .order_by(col(QueueEvent.id).desc())
        .limit(1)
    )
    if last is None or last.kind != QueueEventKind.AUTO_ACCEPT_PAUSED:
        return None
    return {"since": last.created_at.isoformat(), "reason": last.reason, "alarm": last.alarm}


def open_alarms(*, session: Session, queue: Queue) -> dict[str, QueueEvent]:
    """The raising event of each alarm still open, by kind."""
    newest: dict[str, QueueEvent] = {}
    for event in session.scalars(
        select(QueueEvent)
        .where(col(QueueEvent.queue_id) == queue.id, col(QueueEvent.kind).in_(ALARM_KINDS))
        .order_by(col(QueueEvent.id))
    ):
        newest[event.alarm or ""] = event
    return {kind: e for kind, e in newest.items() if e.kind == QueueEventKind.ALARM_RAISED and kind}


def history(*, session: Session, queue: Queue, limit: int = 50) -> list[dict]:
    """The newest events first, with who (None: Loupe itself)."""
    rows = session.execute(
        select(QueueEvent, col(User.name))
        .outerjoin(User, col(User.id) == QueueEvent.user_id)
        .where(col(QueueEvent.queue_id) == queue.id)
        .order_by(col(QueueEvent.id).desc())
        .limit(limit)
    ).all()
    return [
        {
            "kind": e.kind,
            "alarm": e.alarm,
            "by": name,
            "at": e.created_at.isoformat(),
            "reason": e.reason,
        }
        for e, name in rows
    ]


def paused_reason(*, session: Session, queue: Queue) -> str | None:
    """Why auto-accept is paused, or None when it is not."""
    state = pause_state(session=session, queue=queue)
    return state["reason"] if state else None
