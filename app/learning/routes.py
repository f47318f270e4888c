"""Model registry pages: versions and runs, a version's card, retrain, promote, roll back."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from redis.exceptions import RedisError

from app.auth.service import PERMISSIONS, require
from app.extensions import db_session, redis_conn, write_session
from app.learning.registry import (
    card_limitations,
    get_version,
    previous_active,
    promote,
    rollback,
    runs_of,
    version_status,
    versions_of,
)
from app.queues.service import get_queue, policy_of
from app.tasks import enqueue_retrain, relay_outbox

bp = Blueprint("models", __name__)


def _may(action: str) -> bool:
    return current_user.role in PERMISSIONS[action]


@bp.get("/queues/<name>/models")
@login_required
def index(name: str):
    session = db_session()
    queue = get_queue(session=session, name=name, user=current_user)
    versions = versions_of(session=session, queue=queue)
    return render_template(
        "models/index.html",
        queue=queue,
        policy=policy_of(queue),
        versions=versions,
        previous=previous_active(session=session, queue=queue),
        names={v.id: v.version for v in versions},
        runs=runs_of(session=session, queue=queue),
        status=version_status,
        may_retrain=_may("retrain"),
        may_promote=_may("promote"),
    )


@bp.get("/queues/<name>/models/<version>")
@login_required
def card(name: str, version: str):
    session = db_session()
    queue = get_queue(session=session, name=name, user=current_user)
    row = get_version(session=session, queue=queue, version=version)
    return render_template(
        "models/card.html",
        queue=queue,
        v=row,
        m=row.metrics or {},
        c=row.card or {},
        status=version_status(row),
        limitations=card_limitations(row),
        may_promote=_may("promote"),
    )


@bp.post("/queues/<name>/models/retrain")
@login_required
def retrain(name: str):
    session = db_session()
    queue = get_queue(session=session, name=name, user=current_user)
    require(current_user, "retrain")
    try:
        enqueue_retrain(
            redis_conn(), queue.id, reason=f"requested by {current_user.name}", follow_up=True
        )
        flash("Retraining has started. The new version appears here when it is done.", "ok")
    except RedisError:
        flash("The job queue is not answering; retraining could not be started.", "error")
    return redirect(url_for("models.index", name=name))


def _change_active(name: str, change, message: str):
    """Runs `change(session=, queue=)` (promote or roll back), has the waiting items
    re-scored, and says so."""
    session = db_session()
    queue = get_queue(session=session, name=name, user=current_user)
    require(current_user, "promote")
    session = write_session()
    row = change(session=session, queue=queue, user=current_user)
    session.commit()
    # Re-scoring was promised in that transaction; hand it over now (or the relay will).
    relay_outbox(current_app.extensions["loupe.engine"], redis_conn())
    flash(message.format(version=row.version) + " Waiting items are being re-scored.", "ok")
    return redirect(url_for("models.index", name=name))


@bp.post("/queues/<name>/models/<version>/promote")
@login_required
def promote_version(name: str, version: str):
    return _change_active(
        name, lambda **kw: promote(version=version, **kw), "{version} is now the active model."
    )


@bp.post("/queues/<name>/models/rollback")
@login_required
def rollback_version(name: str):
    return _change_active(name, rollback, "Rolled back: {version} is the active model again.")
