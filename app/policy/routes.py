"""The policy page, where leads (scientists, admins) change a queue's policy: every field
as a form, a preview of a change on recent items, and the history of changes. It saves
through app.queues.policy_changes, as the API's PATCH does."""

from __future__ import annotations

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.auth.service import require
from app.errors import ValidationFailed
from app.extensions import db_session, redis_conn, write_session
from app.learning.activation import retrain_for_policy
from app.policy.form import errors_by_field, policy_fields, read_form
from app.policy.preview import RECENT_ITEMS, preview_policy
from app.queues.policy_changes import change_policy, policy_history
from app.queues.service import get_queue, policy_of
from app.queues.sla import sla_status

bp = Blueprint("policy", __name__)


def _policy_queue(name: str):
    """The queue, for members allowed to configure it (404 for others' queues, 403 for
    reviewers), as the API checks."""
    queue = get_queue(session=db_session(), name=name, user=current_user)
    require(current_user, "configure")
    return queue


def _policy_page(queue, *, submitted=None, errors=None, status: int = 200):
    session = db_session()
    response = make_response(
        render_template(
            "policy/page.html",
            queue=queue,
            fields=policy_fields(policy_of(queue), submitted=submitted, errors=errors),
            form_error=(errors or {}).get(""),
            history=policy_history(session=session, queue=queue),
            sla=sla_status(session=session, queue=queue),
            recent=RECENT_ITEMS,
        ),
        status,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/queues/<name>/policy")
@login_required
def page(name: str):
    """Every policy field in a form, a preview of a change, and the history of changes."""
    return _policy_page(_policy_queue(name))


@bp.post("/queues/<name>/policy")
@login_required
def save(name: str):
    """Saves the form through the API's validation: all or nothing; on errors the form comes
    back as typed with each error next to its field (422)."""
    queue = _policy_queue(name)
    typed: dict[str, str] = {}
    try:
        typed, changes = read_form(request.form)
        if not changes:
            raise ValidationFailed("Nothing to change.", [{"field": "", "message": "empty form"}])
        session = write_session()
        policy, before, record = change_policy(
            session=session, queue=queue, user=current_user, changes=changes, via="page"
        )
        session.commit()
    except ValidationFailed as exc:
        db_session().rollback()
        return _policy_page(
            queue,
            submitted=typed,
            errors=errors_by_field(exc.details) or {"": exc.message},
            status=422,
        )
    if record is None:
        flash("Nothing changed: every field already had that value.", "ok")
        return redirect(url_for("policy.page", name=name), code=303)
    retraining = retrain_for_policy(
        redis=redis_conn(),
        queue=queue,
        user=current_user,
        before=before,
        after=policy.model_dump(),
    )
    changed = ", ".join(sorted(record.changes))
    message = f"Policy saved: {changed}."
    if retraining:
        message += f" A retraining run started ({', '.join(retraining['fields'])} changed)."
    flash(message, "ok")
    return redirect(url_for("policy.page", name=name), code=303)


@bp.post("/queues/<name>/policy/preview")
@login_required
def preview(name: str):
    """The preview of the form's changes, for htmx: nothing is saved."""
    queue = _policy_queue(name)
    try:
        _, changes = read_form(request.form)
        preview = preview_policy(session=db_session(), queue=queue, changes=changes or {})
        errors = None
    except ValidationFailed as exc:
        preview, errors = None, errors_by_field(exc.details) or {"": exc.message}
    return render_template(
        "policy/_preview.html",
        queue=queue,
        preview=preview,
        errors=errors,
        recent=RECENT_ITEMS,
    )
