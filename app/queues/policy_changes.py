"""Changing a queue's policy with a record of it: who, when, and each changed field's value
before and after. The API's PATCH and the policy page both change the policy here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session, col

from app.models import PolicyChange, Queue, User, id_of, utcnow
from app.queues.service import Policy, policy_of, update_policy

HISTORY_LIMIT = 50


def diff_policies(before: dict, after: dict) -> dict:
    """{field: {"before", "after"}} for each field whose value differs."""
    return {
        name: {"before": before.get(name), "after": after.get(name)}
        for name in after
        if before.get(name) != after.get(name)
    }


def change_policy(
    *,
    session: Session,
    queue: Queue,
    user: User | None,
    changes: dict,
    via: str = "api",
    now: datetime | None = None,
) -> tuple[Policy, dict, PolicyChange | None]:
    """Validates and applies `changes` (all or nothing, app.queues.service.update_policy) and
    records what changed. Returns the new policy, the policy before (a dict) and the record
    (None when nothing changed value). The caller commits."""
    # Read the policy under a row lock: two changes at once each record what they replaced.
    session.refresh(queue, with_for_update=True)
    before = policy_of(queue).model_dump()
    policy = update_policy(session=session, queue=queue, changes=changes)
    changed = diff_policies(before, policy.model_dump())
    record = None
    if changed:
        record = PolicyChange(
            queue_id=id_of(queue),
            user_id=user.id if user is not None else None,
            via=via,
            changes=changed,
            created_at=now or utcnow(),
        )
        session.add(record)
        session.flush()
    return policy, before, record


def policy_history(*, session: Session, queue: Queue, limit: int = HISTORY_LIMIT) -> list[dict]:
    """The queue's policy changes, newest first:
    [{"id", "at", "by", "via", "changes": {field: {"before", "after"}}}]."""
    rows = session.execute(
        select(PolicyChange, col(User.name))
        .outerjoin(User, col(User.id) == col(PolicyChange.user_id))
        .where(col(PolicyChange.queue_id) == queue.id)
        .order_by(col(PolicyChange.id).desc())
        .limit(limit)
    ).all()
    return [
        {
            "id": change.id,
            "at": change.created_at.isoformat(),
            "by": name,
            "via": change.via,
            "changes": change.changes,
        }
        for change, name in rows
    ]
