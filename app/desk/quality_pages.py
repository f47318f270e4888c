"""The desk's pages for gold items and agreement (leads, scientists, admins) and each
reviewer's "My stats"; the same domain functions as app/api/desk.py."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.auth.service import PERMISSIONS, require
from app.desk.agreement import MAX_DAYS, agreement_report
from app.desk.gold import MARKERS, gold_report, mark_gold, unmark_gold
from app.desk.my_stats import my_stats
from app.errors import Conflict, Forbidden, NotFound, ValidationFailed
from app.extensions import db_session, write_session
from app.queues.service import get_queue

bp = Blueprint("desk_quality", __name__)


@bp.app_context_processor
def _desk_links() -> dict:
    """`sees_reviewers()`: whether the user may open a queue's Reviewers page."""

    def sees_reviewers() -> bool:
        return current_user.is_authenticated and current_user.role in PERMISSIONS["configure"]

    return {"sees_reviewers": sees_reviewers}


def _days() -> int:
    raw = request.args.get("days", "30")
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= MAX_DAYS else 30


@bp.get("/queues/<name>/reviewers")
@login_required
def reviewers_page(name: str):
    """Gold items and accuracy, automation bias, and agreement between reviewers."""
    session = db_session()
    queue = get_queue(session=session, name=name, user=current_user)
    require(current_user, "configure")
    days = _days()
    return render_template(
        "desk/reviewers.html",
        queue=queue,
        gold=gold_report(session=session, queue=queue),
        agreement=agreement_report(session=session, queue=queue, days=days),
        days=days,
        may_mark=current_user.role in MARKERS,
    )


@bp.post("/queues/<name>/gold")
@login_required
def mark(name: str):
    """The lead's control: make an item gold with its known answer."""
    queue = get_queue(session=db_session(), name=name, user=current_user)
    external_id = (request.form.get("external_id") or "").strip()
    session = write_session()
    try:
        mark_gold(
            session=session,
            queue=queue,
            user=current_user,
            external_id=external_id,
            label=request.form.get("label"),
        )
        session.commit()
        flash(f"{external_id} is a gold item now.", "ok")
    except (Conflict, NotFound, ValidationFailed, Forbidden) as exc:
        session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("desk_quality.reviewers_page", name=name), code=303)


@bp.post("/queues/<name>/gold/<path:external_id>/unmark")
@login_required
def unmark(name: str, external_id: str):
    """The lead's control: stop using an item as gold."""
    queue = get_queue(session=db_session(), name=name, user=current_user)
    session = write_session()
    try:
        outcome = unmark_gold(
            session=session, queue=queue, user=current_user, external_id=external_id
        )
        session.commit()
        flash(
            f"{external_id} is no longer gold"
            + (" and waits for review again." if outcome == "returned" else " (retired)."),
            "ok",
        )
    except (NotFound, Forbidden) as exc:
        session.rollback()
        flash(exc.message, "error")
    return redirect(url_for("desk_quality.reviewers_page", name=name), code=303)


@bp.get("/me/stats")
@login_required
def my_stats_page():
    """The reviewer's own figures."""
    return render_template(
        "desk/my_stats.html", stats=my_stats(session=db_session(), user=current_user)
    )
