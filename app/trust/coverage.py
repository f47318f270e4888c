"""Measured coverage of the candidate sets on recent human labels (issue 10, point 5): the
quality report's section, for the queue's active version (the measuring itself is
app.learning.coverage, which the model card shares)."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session, col

from app.learning.coverage import WINDOW, measured_coverage
from app.learning.intervals import INTERVAL_ALPHA, INTERVAL_METHOD
from app.models import ModelVersion, Queue
from app.queues.service import policy_of


def coverage_section(*, session: Session, queue: Queue) -> dict:
    """{"target", "measured", "lower", "upper", "n", "per_answer": {answer: {"measured",
    "lower", "upper", "n"}}, "version", "mode", "guarantee", "since", "window", "interval",
    "not_measurable", "held_out"}; with no active version, no figures."""
    version = session.scalar(
        select(ModelVersion).where(col(ModelVersion.queue_id) == queue.id, col(ModelVersion.active))
    )
    if version is not None:
        return measured_coverage(session=session, queue=queue, version=version)
    return {
        "target": policy_of(queue).coverage,
        "measured": None,
        "lower": None,
        "upper": None,
        "n": 0,
        "per_answer": {},
        "version": None,
        "mode": None,
        "guarantee": None,
        "since": None,
        "window": WINDOW,
        "interval": {"method": INTERVAL_METHOD, "confidence": 1 - INTERVAL_ALPHA},
        "not_measurable": 0,
        "held_out": None,
    }
