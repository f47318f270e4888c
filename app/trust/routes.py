"""The quality page of a queue, the alarm banner every queue page shows, and the lead's
button that resumes auto-accept after an alarm paused it."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.auth.service import PERMISSIONS, require
from app.errors import Conflict
from app.extensions import db_session, write_session
from app.learning.drift import drift_section
from app.models import Queue
from app.queues.events import history, pause_state
from app.queues.service import get_queue
from app.trust.alarms import alarms_json, resume_auto_accept
from app.trust.precision import auto_accept_section

bp = Blueprint("trust", __name__)

MAX_REASON = 2000


def _may_resume() -> bool:
    return current_user.is_authenticated and current_user.role in PERMISSIONS["configure"]


@bp.app_context_processor
def _drift_on_pages() -> dict:
    """`drift_of(queue)` for the queue's pages (the Models page shows it)."""

    def drift_of(queue: Queue) -> dict:
        return drift_section(session=db_session(), queue=queue)

    return {"drift_of": drift_of}


@bp.app_context_processor
def _alarm_banner() -> dict:
    """`queue_alarms(queue)` for any page: its open alarms and pause, for the banner."""

    def queue_alarms(queue: Queue) -> dict:
        session = db_session()
        return {
            "alarms": alarms_json(session=session, queue=queue),
            "paused": pause_state(session=session, queue=queue),
            "may_resume": _may_resume(),
        }

    return {"queue_alarms": queue_alarms}


@bp.get("/queues/<name>/quality")
@login_required
def quality_page(name: str):
    """Audited auto-accept precision, what the audit budget buys, alarms and their history."""
    session = db_session()
    queue = get_queue(session=session, name=name, user=current_user)
    return render_template(
        "trust/quality.html",
        queue=queue,
        auto=auto_accept_section(session=session, queue=queue),
        events=history(session=session, queue=queue),
    )


@bp.post("/queues/<name>/auto-accept/resume")
@login_required
def resume(name: str):
    """The lead's button: resumes auto-accept with the reason typed beside it."""
    queue = get_queue(session=db_session(), name=name, user=current_user)
    require(current_user, "configure")
    reason = (request.form.get("reason") or "").strip()
    back = request.form.get("back") == "review"
    target = url_for("review.page" if back else "trust.quality_page", name=name)
    if not reason or len(reason) > MAX_REASON:
        flash(f"Say why auto-accept may resume (1 to {MAX_REASON} characters).", "error")
        return redirect(target, code=303)
    try:
        resume_auto_accept(session=write_session(), queue=queue, user=current_user, reason=reason)
        db_session().commit()
        flash("Auto-accept resumed. The alarm stays shown until audits clear it.", "ok")
    except Conflict:
        flash("Auto-accept was not paused.", "error")
    return redirect(target, code=303)
