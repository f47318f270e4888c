"""The review page: claim, show, decide, next item, swapped in by htmx."""

from __future__ import annotations

from flask import (
    Blueprint,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required

from app.api.routes import hand_over_outbox
from app.auth.service import require
from app.errors import Conflict, Gone, ValidationFailed
from app.extensions import db_session
from app.models import Claim, Item
from app.queues.service import get_queue, item_counts
from app.review.service import claim_next, current_prediction, decide, live_claim, release
from app.review.view import item_view

bp = Blueprint("review", __name__)


def _is_htmx() -> bool:
    return "HX-Request" in request.headers and "HX-History-Restore-Request" not in request.headers


def _skipped_key(queue_id: int) -> str:
    return f"skipped:{queue_id}"


def _render(queue, claim, notice: str | None = None):
    """The item fragment for htmx, else the full page that includes it."""
    s = db_session()
    item = s.get(Item, claim.item_id) if claim else None
    context = {
        "queue": queue,
        "claim": claim,
        "item": item_view(item, current_prediction(session=s, item_id=item.id)) if item else None,
        "counts": item_counts(session=s, queue_ids=[queue.id])[queue.id],
        "notice": notice,
    }
    template = "review/_item.html" if _is_htmx() else "review/page.html"
    response = make_response(render_template(template, **context))
    response.headers["Vary"] = "HX-Request"
    response.headers["Cache-Control"] = "no-store"
    return response


def _next_claim(queue):
    s = db_session()
    skipped = session.get(_skipped_key(queue.id), [])
    claim = live_claim(session=s, queue=queue, user=current_user) or claim_next(
        session=s, queue=queue, user=current_user, exclude_item_ids=skipped
    )
    if claim is None and skipped:
        # Only skipped items are left: offer them again rather than an empty queue.
        session.pop(_skipped_key(queue.id), None)
        claim = claim_next(session=s, queue=queue, user=current_user)
    s.commit()
    return claim


@bp.route("/queues/<name>/review", methods=["GET", "POST"])
@login_required
def page(name: str):
    """Shows the reviewer's current item, claiming the next one when they hold none."""
    queue = get_queue(session=db_session(), name=name, user=current_user)
    require(current_user, "review")
    return _render(queue, _next_claim(queue))


@bp.post("/queues/<name>/claims/<token>/decide")
@login_required
def decide_view(name: str, token: str):
    s = db_session()
    queue = get_queue(session=s, name=name, user=current_user)
    label = (request.form.get("label") or request.form.get("other") or "").strip()
    notice = None
    try:
        decision = decide(
            session=s,
            token=token,
            user=current_user,
            label=label,
            comment=request.form.get("comment") or None,
        )
        s.commit()
        hand_over_outbox(decision.outbox_id)
        notice = f"Saved “{label}” for {decision.item.external_id}."
    except Gone as exc:
        s.commit()
        notice = f"{exc.message}"
    except (Conflict, ValidationFailed) as exc:
        s.rollback()
        claim = live_claim(session=s, queue=queue, user=current_user)
        return _render(queue, claim, notice=exc.message), 422 if isinstance(
            exc, ValidationFailed
        ) else 409
    if not _is_htmx():
        flash(notice, "success")
        return redirect(url_for("review.page", name=queue.name), code=303)
    return _render(queue, _next_claim(queue), notice=notice)


@bp.post("/queues/<name>/claims/<token>/skip")
@login_required
def skip_view(name: str, token: str):
    s = db_session()
    queue = get_queue(session=s, name=name, user=current_user)
    claim = s.query(Claim).filter(Claim.token == token).first()
    release(session=s, token=token, user=current_user)
    s.commit()
    if claim is not None:
        skipped = session.get(_skipped_key(queue.id), [])
        session[_skipped_key(queue.id)] = (skipped + [claim.item_id])[-200:]
    if not _is_htmx():
        return redirect(url_for("review.page", name=queue.name), code=303)
    return _render(queue, _next_claim(queue), notice="Skipped; the item went back to the queue.")
