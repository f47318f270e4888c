"""The dashboard page of a queue (leads, scientists, admins); the window selector swaps the
panels in place with htmx."""

from __future__ import annotations

from flask import Blueprint, make_response, render_template, request
from flask_login import current_user, login_required

from app.auth.service import require
from app.dashboard.charts import render
from app.dashboard.panels import dashboard
from app.dashboard.timeline import WINDOWS, window_of
from app.extensions import db_session
from app.queues.service import get_queue

bp = Blueprint("dashboard", __name__)


def _is_htmx() -> bool:
    """An htmx request for the fragment (boosted navigation and history restores get pages)."""
    h = request.headers
    return "HX-Request" in h and "HX-History-Restore-Request" not in h and "HX-Boosted" not in h


@bp.get("/queues/<name>/dashboard")
@login_required
def page(name: str):
    """Depth, age, throughput, service level, audited precision, models, calibration and
    drift of one queue, as charts with captions."""
    session = db_session()
    queue = get_queue(session=session, name=name, user=current_user)
    require(current_user, "view_dashboard")
    window = window_of(request.args.get("window"))
    panels = dashboard(session=session, queue=queue, window=window)
    for p in panels:
        p["svg"] = render(p)
    template = "dashboard/_panels.html" if _is_htmx() else "dashboard/page.html"
    response = make_response(
        render_template(template, queue=queue, window=window, windows=WINDOWS, panels=panels)
    )
    response.headers["Vary"] = "HX-Request"
    return response
