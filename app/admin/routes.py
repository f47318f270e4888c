"""Admin pages: the failed jobs the relay parked, and retrying them."""

from __future__ import annotations

from flask import Blueprint, current_app, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.auth.service import PERMISSIONS, require
from app.extensions import db_session, redis_conn, write_session
from app.learning.outbox import relay_outbox
from app.learning.parking import outbox_row, parked_count, parked_rows, retry_parked

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _is_htmx() -> bool:
    """An htmx request for a fragment (boosted navigation and history restores get pages)."""
    h = request.headers
    return "HX-Request" in h and "HX-History-Restore-Request" not in h and "HX-Boosted" not in h


@bp.app_context_processor
def _failed_jobs_link() -> dict:
    """`parked_jobs()` for any page: how many jobs are parked when the user is an admin
    (the queue list links them to this page with it), else None."""

    def parked_jobs() -> int | None:
        if not current_user.is_authenticated:
            return None
        if current_user.role not in PERMISSIONS["manage_jobs"]:
            return None
        return parked_count(session=db_session())

    return {"parked_jobs": parked_jobs}


def _fragment(row: dict):
    response = make_response(render_template("admin/_job.html", r=row))
    response.headers["Vary"] = "HX-Request"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/jobs")
@login_required
def jobs():
    """The parked outbox rows with their errors (admins only)."""
    require(current_user, "manage_jobs")
    response = make_response(
        render_template(
            "admin/jobs.html",
            rows=parked_rows(session=db_session()),
            max_attempts=current_app.config["LOUPE_SETTINGS"].outbox_max_attempts,
        )
    )
    response.headers["Vary"] = "HX-Request"
    return response


@bp.get("/jobs/<int:outbox_id>")
@login_required
def job(outbox_id: int):
    """One row of the page, which a retried row polls until it is done or parked again."""
    require(current_user, "manage_jobs")
    if not _is_htmx():
        return redirect(url_for("admin.jobs"))
    return _fragment(outbox_row(session=db_session(), outbox_id=outbox_id))


@bp.post("/jobs/<int:outbox_id>/retry")
@login_required
def retry(outbox_id: int):
    """Hands a parked row to the workers again; the row follows it to its end."""
    require(current_user, "manage_jobs")
    session = write_session()
    retry_parked(session=session, outbox_id=outbox_id)
    session.commit()
    # Hand it over now; with Redis away, the workers' relay does when it is back.
    relay_outbox(current_app.extensions["loupe.engine"], redis_conn())
    if not _is_htmx():
        return redirect(url_for("admin.jobs"), 303)
    return _fragment(outbox_row(session=db_session(), outbox_id=outbox_id))
