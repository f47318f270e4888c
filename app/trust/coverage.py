"""Measured coverage of the candidate sets on recent human labels (issue 10, point 5).

PLACEHOLDER until the candidate-set work lands: reports the target only.
"""

from __future__ import annotations

from sqlmodel import Session

from app.models import Queue
from app.queues.service import policy_of


def coverage_section(*, session: Session, queue: Queue) -> dict:
    return {"target": policy_of(queue).coverage, "measured": None, "n": 0, "per_answer": {}}
