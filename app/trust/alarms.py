"""A queue's alarms: raised when a promise fails, acted on, resumed by a lead (issue 10,
point 3).

An alarm is a named check, `kind -> check(session, queue)`, answering why the queue is in
trouble or None. `check_queue` runs them: a failing check whose alarm is not open raises it
(an event) and, when the queue's policy says `pause_on_alarm`, pauses auto-accept (another
event) until a lead resumes it; a passing check clears its alarm (the pause stays until a
lead resumes). Checks run when a person's answer disagrees with an answer auto-accept was
eligible for (cheap: the one check that answer concerns) and in every worker's periodic
maintenance (all of them). Another check (drift, ...) is added with `register`.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlmodel import Session, col

from app.errors import Conflict
from app.learning.drift import drift_alarm
from app.models import AuditFrame, Queue, User
from app.queues.events import open_alarms, pause_state, record
from app.queues.service import policy_of
from app.states import QueueEventKind
from app.trust.precision import alarm_target, headline

AlarmCheck = Callable[[Session, Queue], str | None]

PRECISION_BELOW_TARGET = "precision_below_target"


def precision_below_target(session: Session, queue: Queue) -> str | None:
    """The audited lower bound of the active model's precision is below the target, on at
    least `alarm_min_audits` answers."""
    policy = policy_of(queue)
    now = headline(session=session, queue=queue)
    target = alarm_target(policy)
    if now["n"] < policy.alarm_min_audits or now["lower"] is None or now["lower"] >= target:
        return None
    which = f" of {now['model_version']}" if now["model_version"] else ""
    return (
        f"audited precision{which} is {now['estimate']:.3f}, at least {now['lower']:.3f} "
        f"with {policy.confidence:.0%} confidence ({now['n']} audited answers): below the "
        f"target {target:.3f}"
    )


INPUT_DRIFT = "input_drift"

CHECKS: dict[str, AlarmCheck] = {
    PRECISION_BELOW_TARGET: precision_below_target,
    # The queue's recent inputs differ from what the active model learned from (PSI past
    # the alarm level on a feature, beyond sampling noise: app.learning.drift).
    INPUT_DRIFT: drift_alarm,
}


def register(kind: str, check: AlarmCheck) -> None:
    """Adds a check; `kind` is the alarm's stable name in the API and /metrics."""
    CHECKS[kind] = check


def _lock(session: Session, queue: Queue) -> None:
    """Serialises alarm changes of one queue (PostgreSQL; SQLite has one writer anyway)."""
    session.execute(select(col(Queue.id)).where(col(Queue.id) == queue.id).with_for_update())


def check_queue(
    *, session: Session, queue: Queue, kinds: list[str] | None = None
) -> list[tuple[str, QueueEventKind]]:
    """Runs the checks (all, or those named) and records what changed: (alarm, event)."""
    reasons = {
        kind: check(session, queue)
        for kind, check in CHECKS.items()
        if kinds is None or kind in kinds
    }
    opened = open_alarms(session=session, queue=queue)
    if all((reason is not None) == (kind in opened) for kind, reason in reasons.items()):
        return []
    _lock(session, queue)
    opened = open_alarms(session=session, queue=queue)
    policy = policy_of(queue)
    changes: list[tuple[str, QueueEventKind]] = []
    for kind, reason in reasons.items():
        if reason is not None and kind not in opened:
            record(
                session=session,
                queue=queue,
                kind=QueueEventKind.ALARM_RAISED,
                alarm=kind,
                reason=reason,
            )
            changes.append((kind, QueueEventKind.ALARM_RAISED))
            if policy.pause_on_alarm and pause_state(session=session, queue=queue) is None:
                record(
                    session=session,
                    queue=queue,
                    kind=QueueEventKind.AUTO_ACCEPT_PAUSED,
                    alarm=kind,
                    reason=reason,
                )
                changes.append((kind, QueueEventKind.AUTO_ACCEPT_PAUSED))
        elif reason is None and kind in opened:
            record(
                session=session,
                queue=queue,
                kind=QueueEventKind.ALARM_CLEARED,
                alarm=kind,
                reason="the check passes again",
            )
            changes.append((kind, QueueEventKind.ALARM_CLEARED))
    return changes


def after_answer(*, session: Session, queue: Queue, item_id: int, value: str) -> None:
    """A person answered an item: when auto-accept was eligible for it and the answer
    differs from the model's, the precision check runs (agreeing answers cannot raise it;
    the periodic maintenance catches the rest)."""
    frame = session.scalar(select(AuditFrame).where(col(AuditFrame.item_id) == item_id))
    if frame is not None and frame.to_person and frame.answer != value:
        check_queue(session=session, queue=queue, kinds=[PRECISION_BELOW_TARGET])


def resume_auto_accept(*, session: Session, queue: Queue, user: User, reason: str) -> dict:
    """A lead resumes auto-accept (409 when it is not paused); the alarm stays shown until
    its check passes, but does not pause again unless it is raised anew."""
    _lock(session, queue)
    paused = pause_state(session=session, queue=queue)
    if paused is None:
        raise Conflict(f"Auto-accept is not paused on {queue.name!r}.")
    event = record(
        session=session,
        queue=queue,
        kind=QueueEventKind.AUTO_ACCEPT_RESUMED,
        alarm=paused["alarm"],
        reason=reason,
        user=user,
    )
    return {
        "paused": False,
        "resumed_at": event.created_at.isoformat(),
        "resumed_by": user.name,
        "reason": reason,
        "was_paused_since": paused["since"],
        "was_paused_because": paused["reason"],
    }


def alarms_json(*, session: Session, queue: Queue) -> list[dict]:
    """The open alarms: {"kind", "since", "detail", "paused"} (paused: auto-accept is)."""
    paused = pause_state(session=session, queue=queue)
    return [
        {
            "kind": kind,
            "since": event.created_at.isoformat(),
            "detail": event.reason,
            "paused": paused is not None,
        }
        for kind, event in sorted(open_alarms(session=session, queue=queue).items())
    ]
