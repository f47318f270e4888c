"""Auto-accept precision, estimated from audit decisions (issue 10, point 1).

PLACEHOLDER until the audited-precision work lands: reports the policy only.
"""

from __future__ import annotations

from sqlmodel import Session

from app.models import Queue
from app.queues.service import policy_of


def auto_accept_section(*, session: Session, queue: Queue) -> dict:
    policy = policy_of(queue)
    return {
        "enabled": True,
        "paused": False,
        "threshold": policy.auto_accept_threshold,
        "precision": None,
    }
