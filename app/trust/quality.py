"""The quality report of a queue (GET /api/v1/queues/{name}/quality and the queue's pages):
one section per promise, each computed by the module that keeps it."""

from __future__ import annotations

from sqlmodel import Session

from app.learning.drift import drift_section
from app.models import Queue
from app.trust.alarms import alarms_json
from app.trust.coverage import coverage_section
from app.trust.precision import auto_accept_section


def quality_report(*, session: Session, queue: Queue) -> dict:
    """Auto-accept (with its audited precision), coverage, drift and the open alarms."""
    return {
        "auto_accept": auto_accept_section(session=session, queue=queue),
        "coverage": coverage_section(session=session, queue=queue),
        "drift": drift_section(session=session, queue=queue),
        "alarms": alarms_json(session=session, queue=queue),
    }
