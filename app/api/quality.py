"""A queue's quality report over the API: how far its automation can be trusted."""

from __future__ import annotations

from flask import Blueprint, jsonify

from app.api.endpoint import endpoint
from app.extensions import db_session
from app.models import Queue
from app.trust.drift import drift_section
from app.trust.quality import quality_report

bp = Blueprint("quality", __name__)


@bp.app_context_processor
def _quality_on_pages() -> dict:
    """`drift_of(queue)` for the queue's pages (the Models page shows it)."""

    def drift_of(queue: Queue) -> dict:
        return drift_section(session=db_session(), queue=queue)

    return {"drift_of": drift_of}


@bp.get("/queues/<name>/quality")
@endpoint(tag="queues")
def quality_view(queue: Queue):
    """Audited auto-accept precision, candidate-set coverage, input drift and open alarms
    (members of the queue)."""
    return jsonify(quality_report(session=db_session(), queue=queue))
