"""The lead's desk page: what waits for a lead, decided one item at a time (htmx)."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required

from app.auth.service import PERMISSIONS, require
from app.desk.adjudication import adjudicate, adjudication_list, waiting_counts
from app.desk.consensus import overlap_status
from app.errors import Conflict, NotFound, ValidationFailed
from app.extensions import db_session, redis_conn, write_session
from app.learning.outbox import hand_over_outbox
from app.models import Queue, id_of
from app.queues.service import get_queue, policy_of

bp = Blueprint("desk", __name__)


def _is_htmx() -> bool:
    h = request.headers
    return "HX-Request" in h and "HX-History-Restore-Request" not in h and "HX-Boosted" not in h


@bp.app_context_processor
def _desk_on_pages() -> dict:
    """`lead_desk(queues)` for the queue list: per queue, what waits for a lead and whether
    the queue has the members its overlap needs."""

    def lead_desk(queues: list[Queue]) -> dict[int, dict]:
        session = db_session()
        waiting = waiting_counts(session=session, queue_ids=[id_of(q) for q in queues])
        may = current_user.is_authenticated and current_user.role in PERMISSIONS["adjudicate"]
        return {
            id_of(q): {
                "waiting": waiting[id_of(q)],
                "may_adjudicate": may,
                "overlap": overlap_status(
                    session=session, queue=q, reviews_required=policy_of(q).reviews_required
                ),
            }
            for q in queues
        }

    return {"lead_desk": lead_desk}


def _queue(name: str) -> Queue:
    queue = get_queue(session=db_session(), name=name, user=current_user)
    require(current_user, "adjudicate")
    return queue


@bp.get("/queues/<name>/desk")
@login_required
def page(name: str):
    """Everything waiting for a lead in the queue, oldest first."""
    queue = _queue(name)
    session = db_session()
    entries = adjudication_list(session=session, queue=queue)
    waiting = waiting_counts(session=session, queue_ids=[id_of(queue)])[id_of(queue)]
    response = make_response(
        render_template("desk/page.html", queue=queue, entries=entries, waiting=waiting)
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/queues/<name>/desk/adjudicate")
@login_required
def adjudicate_view(name: str):
    """The lead's decision on one item; htmx swaps the item's card for the outcome."""
    queue = _queue(name)
    external_id = request.form.get("external_id") or ""
    label = request.form.get("label") or ""
    s = write_session()
    try:
        done = adjudicate(
            session=s,
            queue=queue,
            external_id=external_id,
            user=current_user,
            label=label,
            comment=request.form.get("comment") or None,
        )
    except (Conflict, NotFound, ValidationFailed) as exc:
        s.rollback()
        return _refused(queue, external_id, exc)
    s.commit()
    hand_over_outbox(current_app.extensions["loupe.engine"], redis_conn(), done.outbox_id)
    words = {
        "decided": f"Decided {done.item.external_id}: “{done.label.value}”.",
        "confirmed": f"Confirmed “{done.label.value}” for {done.item.external_id}; flag closed.",
        "replaced": (
            f"Replaced “{done.previous_label}” with “{done.label.value}” for "
            f"{done.item.external_id}."
        ),
    }[done.outcome]
    if not _is_htmx():
        flash(words, "success")
        return redirect(url_for("desk.page", name=queue.name), code=303)
    return render_template("desk/_done.html", external_id=done.item.external_id, text=words)


def _refused(queue: Queue, external_id: str, exc):
    """The item's card again with why the decision was refused, or, when it no longer
    waits (another lead decided it), a closed card saying so."""
    text = f"Not saved: {exc.message}"
    if not _is_htmx():
        flash(text, "error")
        return redirect(url_for("desk.page", name=queue.name), code=303)
    entries = adjudication_list(session=db_session(), queue=queue, external_id=external_id)
    if not entries:
        return render_template("desk/_done.html", external_id=external_id, text=text, error=True)
    return render_template("desk/_entry.html", queue=queue, e=entries[0], notice=text)
