"""Drift of recent inputs from the active model's training data (issue 10, point 4).

PLACEHOLDER until the drift guard lands.
"""

from __future__ import annotations

from sqlmodel import Session

from app.models import Queue


def drift_section(*, session: Session, queue: Queue) -> dict:
    return {"status": "unknown", "window": 0, "features": []}
