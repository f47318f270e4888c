"""The review workspace: claim, show, decide, and the next item swapped in by htmx."""

from __future__ import annotations

from dataclasses import dataclass

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
from flask_login import current_user, login_required, user_logged_out
from sqlalchemy import select
from sqlmodel import col

from app.auth.service import require
from app.desk.adjudication import outcomes_for
from app.errors import Conflict, Gone, LoupeError, NotFound, ValidationFailed
from app.exports.service import parse_since
from app.extensions import db_session, redis_conn, write_session
from app.learning.outbox import hand_over_outbox
from app.models import Claim, Item, Queue
from app.queues.service import get_queue, queues_for, recent_item_counts
from app.review import actions, presence
from app.review.presenter import present_for_review, present_preview
from app.review.service import AlreadyDecided, decide, live_claim, release, typed_label
from app.review.workflow import next_for_reviewer, skip
from app.states import ClaimState

bp = Blueprint("review", __name__)


def _is_htmx() -> bool:
    """An htmx swap of the item (boosted navigation and history restores get full pages)."""
    h = request.headers
    return "HX-Request" in h and "HX-History-Restore-Request" not in h and "HX-Boosted" not in h


@dataclass(frozen=True)
class Notice:
    """One line above the item: `success` is quiet, `error` (a refusal or a failure) is an
    alert that says what to do next."""

    text: str
    kind: str = "success"


_UNKNOWN = object()


def _render(
    queue, claim, notice: Notice | None = None, status: int = 200, ahead=_UNKNOWN, typed=None
):
    """The item fragment for htmx, else the full page that includes it."""
    s = db_session()
    shown = (
        present_for_review(session=s, queue=queue, item=s.get_one(Item, claim.item_id))
        if claim
        else None
    )
    ahead_shown = None
    if shown is not None:
        if ahead is _UNKNOWN:
            ahead = live_claim(session=s, queue=queue, user=current_user, state=ClaimState.AHEAD)
        if ahead is not None:
            ahead_shown = present_preview(
                session=s, queue=queue, item=s.get_one(Item, ahead.item_id)
            )
    context = {
        "queue": queue,
        "claim": claim,
        "item": shown,
        "ahead": ahead_shown,
        "counts": recent_item_counts(session=s, queue_id=queue.id),
        "notice": notice,
        "typed": typed,
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
    """Shows the reviewer's current item (the same one after a reload, in a second tab, or
    back from another page), claiming the next one when they hold none."""
    queue = _queue(name)
    claim, ahead = _next_claim(queue)
    return _render(queue, claim, ahead=ahead)


def _after(queue, notice: Notice):
    """The reviewer's current item after an action, with what became of the action."""
    if not _is_htmx():
        flash(notice.text, notice.kind)
        return redirect(url_for("review.page", name=queue.name), code=303)
    claim, ahead = _next_claim(queue)
    return _render(queue, claim, notice=notice, ahead=ahead)


LOST = Notice(
    "Not saved: your hold on that item ran out or was given back, so it went back to the "
    "queue for someone else. Here is your next item.",
    "error",
)


@bp.post("/queues/<name>/claims/<token>/decide")
@login_required
def decide_view(name: str, token: str):
    """Saves the answer: a candidate's button, or a typed answer from its own form."""
    queue = _queue(name)
    typed = bool(request.form.get("typed"))
    label = (request.form.get("label") or "").strip()
    if typed:
        label = typed_label(queue, label)
    s = write_session()
    try:
        decision = decide(
            session=s,
            token=token,
            user=current_user,
            label=label,
            comment=request.form.get("comment") or None,
            model_feedback=request.form.get("model_feedback") or None,
        )
    except Gone:
        s.commit()  # keep the release of the expired lease
        return _after(queue, LOST)
    except AlreadyDecided as exc:
        s.rollback()
        return _after(queue, _already_decided(exc, label))
    except (Conflict, ValidationFailed) as exc:
        s.rollback()
        return _refused(
            queue,
            f"Not saved: {exc.message} {_choose_hint(queue)}",
            exc.status,
            typed=label if typed else None,
        )
    s.commit()
    hand_over_outbox(current_app.extensions["loupe.engine"], redis_conn(), decision.outbox_id)
    return _after(
        queue, Notice(f"Saved “{label}” for {decision.item.external_id}. Press u to undo.")
    )


def _already_decided(exc: AlreadyDecided, label: str) -> Notice:
    if exc.previous_label == label:
        return Notice(f"Saved “{label}” for {exc.external_id}.")
    return Notice(
        f"Not saved: you had already answered {exc.external_id} as “{exc.previous_label}” "
        f"(in another tab or window), so “{label}” was not saved. To change it, press u "
        "(undo) or reopen it from My work. Here is your current item.",
        "error",
    )


def _choose_hint(queue) -> str:
    if not queue.labels:
        return "Pick a candidate, or type your answer."
    shown = ", ".join(queue.labels[:12]) + (", …" if len(queue.labels) > 12 else "")
    return f"Pick a candidate, or type one of this queue's answers: {shown}."


def _refused(queue, text: str, status: int, typed: str | None = None):
    """The reviewer's current item again, with why the action was refused (and what they
    typed, to correct rather than retype)."""
    claim = live_claim(session=db_session(), queue=queue, user=current_user)
    return _render(queue, claim, notice=Notice(text, "error"), status=status, typed=typed)


@bp.post("/queues/<name>/claims/<token>/skip")
@login_required
def skip_view(name: str, token: str):
    queue = _queue(name)
    s = write_session()
    skipped = skip(session=s, token=token, user=current_user)
    s.commit()
    if not skipped:
        return _after(
            queue,
            Notice(
                "Not skipped: that item was already answered or given back (perhaps in "
                "another tab). Here is your current item.",
                "error",
            ),
        )
    return _after(queue, Notice("Skipped; the item went back to the queue."))


def _claim_action(queue, refusal: str, action):
    """Runs an action on the reviewer's live claim: (result, None), or (None, the page
    saying why not) for a lost lease or bad input."""
    s = write_session()
    try:
        result = action(s)
    except Gone:
        s.commit()
        return None, _after(queue, LOST)
    except (Conflict, ValidationFailed) as exc:
        s.rollback()
        why = refusal + "." if isinstance(exc, ValidationFailed) else f"{refusal}: {exc.message}"
        return None, _refused(queue, why, exc.status)
    s.commit()
    return result, None


@bp.post("/queues/<name>/claims/<token>/escalate")
@login_required
def escalate_view(name: str, token: str):
    queue = _queue(name)
    it, refused = _claim_action(
        queue,
        "Not escalated: a lead needs to know why. Press e and type a reason",
        lambda s: actions.escalate(
            session=s, token=token, user=current_user, reason=request.form.get("reason")
        ),
    )
    return refused or _after(queue, Notice(f"Escalated {it.external_id} to a lead."))


@bp.post("/queues/<name>/claims/<token>/flag")
@login_required
def flag_view(name: str, token: str):
    queue = _queue(name)
    it, refused = _claim_action(
        queue,
        "Not flagged: say what looks wrong. Press f and type a comment",
        lambda s: actions.flag(
            session=s, token=token, user=current_user, comment=request.form.get("comment")
        ),
    )
    if refused:
        return refused
    claim = live_claim(session=db_session(), queue=queue, user=current_user)
    return _render(queue, claim, notice=Notice(f"Flagged {it.external_id}; now give your answer."))


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
        # "decided": answered in another tab, nothing was lost; else the lease ran out.
        ended = s.scalar(
            select(col(Claim.state)).where(
                col(Claim.token) == token, col(Claim.user_id) == current_user.id
            )
        )
        body = {"error": "gone", "message": "This item is no longer yours.", "state": ended}
        return jsonify(body), 410
    ahead = live_claim(session=s, queue=queue, user=current_user, state=ClaimState.AHEAD)
    if ahead is not None:
        ahead.expires_at = expires
        s.get_one(Item, ahead.item_id).lease_expires_at = expires
    s.commit()
    return jsonify({"expires_at": expires.isoformat()})


@bp.post("/me/leave")
@login_required
def leave_view():
    """Sent by the browser when a page is left (navigator.sendBeacon): the reviewer's items
    are kept only for a short grace, in which the next page takes them up again."""
    if presence.holds_any(session=db_session(), user=current_user):
        s = write_session()
        presence.leave(session=s, user=current_user)
        s.commit()
    return "", 204


@user_logged_out.connect
def _give_items_back(_app, user, **_):
    """Logging out gives the items the user holds back to their queues at once."""
    s = write_session()
    presence.release_all(session=s, user=user)
    s.commit()


@bp.post("/me/presence")
@login_required
def presence_view():
    """Sent by every open page of the app while the reviewer is active: their items stay
    theirs while they look at another page."""
    if presence.holds_any(session=db_session(), user=current_user):
        s = write_session()
        presence.keep(session=s, user=current_user)
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
        return _refused(queue, f"Nothing undone: {exc.message}", 200)
    if current is not None and current.item_id != back.item.id:
        release(session=s, token=current.token, user=current_user)
    s.commit()
    return _render(
        queue,
        back.claim,
        notice=Notice(
            f"Undone: {back.item.external_id} was “{back.previous_label}”; answer it again."
        ),
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
    outcomes = outcomes_for(session=s, item_ids=[r["review"].item_id for r in rows])
    return render_template(
        "review/history.html", rows=rows, queues=queues, filters=request.args, outcomes=outcomes
    )


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
    return db_session().get_one(Queue, queue_id).name
