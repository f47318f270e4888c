"""The review workspace: claim, show, decide, and the next item swapped in by htmx."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required

from app.auth.service import require
from app.errors import Conflict, Forbidden, Gone, LoupeError, NotFound, ValidationFailed
from app.exports.service import parse_since
from app.extensions import db_session, redis_conn, write_session
from app.models import Item, Queue
from app.queues.service import get_queue, queues_for, recent_item_counts
from app.review import actions
from app.review.service import decide, live_claim, release
from app.review.view import preview_view, review_view
from app.review.workflow import next_for_reviewer, skip
from app.tasks import hand_over_outbox

bp = Blueprint("review", __name__)


def _is_htmx() -> bool:
    """An htmx swap of the item (boosted navigation and history restores get full pages)."""
    h = request.headers
    return "HX-Request" in h and "HX-History-Restore-Request" not in h and "HX-Boosted" not in h


_UNKNOWN = object()


def _render(queue, claim, notice: str | None = None, status: int = 200, ahead=_UNKNOWN):
    """The item fragment for htmx, else the full page that includes it."""
    s = db_session()
    view = review_view(session=s, queue=queue, item=s.get(Item, claim.item_id)) if claim else None
    ahead_view = None
    if view is not None:
        if ahead is _UNKNOWN:
            ahead = live_claim(session=s, queue=queue, user=current_user, state="ahead")
        if ahead is not None:
            ahead_view = preview_view(session=s, queue=queue, item=s.get(Item, ahead.item_id))
    context = {
        "queue": queue,
        "claim": claim,
        "item": view,
        "ahead": ahead_view,
        "counts": recent_item_counts(session=s, queue_id=queue.id),
        "notice": notice,
        "undo_seconds": int(actions.UNDO_WINDOW.total_seconds()),
    }
    template = "review/_item.html" if _is_htmx() else "review/page.html"
    # htmx does not swap 4xx answers: the notice in the fragment carries the error instead.
    response = make_response(render_template(template, **context), 200 if _is_htmx() else status)
    response.headers["Vary"] = "HX-Request"
    response.headers["Cache-Control"] = "no-store"
    return response


def _next_claim(queue):
    """(current claim, claim ahead) for the reviewer, committed."""
    s = write_session()
    desk = next_for_reviewer(
        session=s, queue=queue, user=current_user, resume=True, lease_ahead=True
    )
    s.commit()
    return desk.claim, desk.ahead


def _queue(name: str):
    queue = get_queue(session=db_session(), name=name, user=current_user)
    require(current_user, "review")
    return queue


@bp.route("/queues/<name>/review", methods=["GET", "POST"])
@login_required
def page(name: str):
    """Shows the reviewer's current item, claiming the next one when they hold none."""
    queue = _queue(name)
    claim, ahead = _next_claim(queue)
    return _render(queue, claim, ahead=ahead)


def _after(queue, notice: str):
    if not _is_htmx():
        flash(notice, "success")
        return redirect(url_for("review.page", name=queue.name), code=303)
    claim, ahead = _next_claim(queue)
    return _render(queue, claim, notice=notice, ahead=ahead)


def _lost(queue, exc: Gone):
    db_session().commit()  # keep the release of the expired lease
    return _after(
        queue,
        "Your hold on that item expired or was released, so it went back "
        "to the queue and your answer was not saved. " + _short(exc),
    )


def _short(exc: LoupeError) -> str:
    return exc.message if len(exc.message) < 200 else ""


@bp.post("/queues/<name>/claims/<token>/decide")
@login_required
def decide_view(name: str, token: str):
    queue = _queue(name)
    # A typed answer wins: pressing Enter in its box also sends the first candidate button.
    label = (request.form.get("other") or "").strip() or (request.form.get("label") or "").strip()
    decision, refused = _attempt(
        queue,
        "Not saved",
        lambda s: decide(
            session=s,
            token=token,
            user=current_user,
            label=label,
            comment=request.form.get("comment") or None,
            model_feedback=request.form.get("model_feedback") or None,
        ),
    )
    if refused:
        return refused
    hand_over_outbox(current_app.extensions["loupe.engine"], redis_conn(), decision.outbox_id)
    return _after(queue, f"Saved “{label}” for {decision.item.external_id}. Press u to undo.")


def _attempt(queue, refusal: str, action):
    """Runs one write on the reviewer's claim and commits it: (result, None), or
    (None, the page saying why) for a lost lease, a conflict or bad input."""
    s = write_session()
    try:
        result = action(s)
    except Gone as exc:
        return None, _lost(queue, exc)
    except (Conflict, ValidationFailed) as exc:
        s.rollback()
        claim = live_claim(session=s, queue=queue, user=current_user)
        return None, _render(queue, claim, notice=f"{refusal}: {exc.message}", status=exc.status)
    s.commit()
    return result, None


@bp.post("/queues/<name>/claims/<token>/skip")
@login_required
def skip_view(name: str, token: str):
    queue = _queue(name)
    s = write_session()
    skip(session=s, token=token, user=current_user)
    s.commit()
    return _after(queue, "Skipped; the item went back to the queue.")


@bp.post("/queues/<name>/claims/<token>/escalate")
@login_required
def escalate_view(name: str, token: str):
    queue = _queue(name)
    it, refused = _attempt(
        queue,
        "Escalating needs a reason",
        lambda s: actions.escalate(
            session=s, token=token, user=current_user, reason=request.form.get("reason")
        ),
    )
    return refused or _after(queue, f"Escalated {it.external_id} to a lead.")


@bp.post("/queues/<name>/claims/<token>/flag")
@login_required
def flag_view(name: str, token: str):
    queue = _queue(name)
    it, refused = _attempt(
        queue,
        "Flagging needs a comment",
        lambda s: actions.flag(
            session=s, token=token, user=current_user, comment=request.form.get("comment")
        ),
    )
    if refused:
        return refused
    claim = live_claim(session=db_session(), queue=queue, user=current_user)
    return _render(queue, claim, notice=f"Flagged {it.external_id}; now give your answer.")


@bp.post("/queues/<name>/claims/<token>/heartbeat")
@login_required
def heartbeat_view(name: str, token: str):
    """Keeps the lease while the reviewer is active; 410 once it is lost."""
    queue = _queue(name)
    s = write_session()
    try:
        expires = actions.heartbeat(session=s, token=token, user=current_user)
    except (Gone, NotFound):
        s.commit()
        return jsonify({"error": "gone", "message": "This item is no longer yours."}), 410
    ahead = live_claim(session=s, queue=queue, user=current_user, state="ahead")
    if ahead is not None:
        ahead.expires_at = expires
        s.get(Item, ahead.item_id).lease_expires_at = expires
    s.commit()
    return jsonify({"expires_at": expires.isoformat()})


@bp.post("/queues/<name>/claims/<token>/release")
@login_required
def release_view(name: str, token: str):
    """Sent by the browser when the reviewer leaves the page (navigator.sendBeacon)."""
    queue = _queue(name)
    s = write_session()
    ahead = live_claim(session=s, queue=queue, user=current_user, state="ahead")
    for t in (token, ahead.token if ahead else None):
        try:
            if t:
                release(session=s, token=t, user=current_user)
        except (NotFound, Forbidden):
            pass
    s.commit()
    return "", 204


@bp.post("/queues/<name>/undo")
@login_required
def undo_view(name: str):
    queue = _queue(name)
    s = write_session()
    current = live_claim(session=s, queue=queue, user=current_user)
    try:
        back = actions.undo_last(session=s, queue=queue, user=current_user)
    except (NotFound, Conflict) as exc:
        s.rollback()
        return _render(
            queue, live_claim(session=s, queue=queue, user=current_user), notice=exc.message
        )
    if current is not None and current.item_id != back.item.id:
        release(session=s, token=current.token, user=current_user)
    s.commit()
    return _render(
        queue,
        back.claim,
        notice=f"Undone: {back.item.external_id} was “{back.previous_label}”; answer it again.",
    )


@bp.get("/me/reviews")
@login_required
def history():
    """The reviewer's own decisions, with filters, and reopening while still possible."""
    s = db_session()
    queues = queues_for(session=s, user=current_user)
    queue_name = request.args.get("queue") or None
    queue = next((q for q in queues if q.name == queue_name), None)
    if queue_name and queue is None:
        abort(404)
    try:
        since = parse_since(request.args.get("since"))
    except ValidationFailed:
        since = None
        flash("“Since” must be a date like 2026-11-01.", "error")
    rows = actions.history(
        session=s,
        user=current_user,
        queue_id=queue.id if queue else None,
        label=request.args.get("label") or None,
        since=since,
    )
    return render_template("review/history.html", rows=rows, queues=queues, filters=request.args)


@bp.post("/me/reviews/<int:review_id>/reopen")
@login_required
def reopen_view(review_id: int):
    s = write_session()
    try:
        back = actions.reopen(session=s, review_id=review_id, user=current_user)
    except LoupeError as exc:
        s.rollback()
        flash(exc.message, "error")
        return redirect(url_for("review.history"), code=303)
    queue_name = get_queue_name(back.item.queue_id)
    s.commit()
    flash(f"Reopened {back.item.external_id} (was “{back.previous_label}”).", "success")
    return redirect(url_for("review.page", name=queue_name), code=303)


def get_queue_name(queue_id: int) -> str:
    return db_session().get(Queue, queue_id).name
