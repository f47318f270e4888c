"""A queue's dashboard figures over the API: the numbers behind each chart of the page."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from app.api.endpoint import endpoint
from app.api.schemas import DashboardOut, DashboardQuery
from app.dashboard.panels import dashboard
from app.dashboard.timeline import window_of
from app.extensions import db_session
from app.models import Queue, utcnow

bp = Blueprint("dashboard", __name__)


@bp.get("/queues/<name>/dashboard")
@endpoint(tag="queues", permission="view_dashboard", query=DashboardQuery, ok={200: DashboardOut})
def dashboard_view(queue: Queue):
    """Depth, oldest age, throughput, service level breaches, audited precision over time,
    model quality by version, calibration and drift (lead, scientist, admin); `window` is
    24h, 7d (the default) or 30d."""
    window = window_of(request.args.get("window"))
    now = utcnow()
    panels = dashboard(session=db_session(), queue=queue, window=window, now=now)
    return jsonify(
        {
            "queue": queue.name,
            "window": window.key,
            "generated_at": now.isoformat(),
            "panels": panels,
        }
    )
