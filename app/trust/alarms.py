"""A queue's alarms: raised when a promise fails, acted on, resolved by a lead (issue 10,
point 3).

PLACEHOLDER until the alarm work lands: no alarms.
"""

from __future__ import annotations

from sqlmodel import Session

from app.models import Queue


def alarms_json(*, session: Session, queue: Queue) -> list[dict]:
    return []
