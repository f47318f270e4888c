"""Model registry pages: versions and runs, a version's card, retrain, promote, roll back."""

from __future__ import annotations

from datetime import UTC, datetime

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
from redis.exceptions import RedisError
from rq.job import Job

from app.auth.service import PERMISSIONS, require
from app.errors import ServiceUnavailable
from app.extensions import db_session, redis_conn, write_session
from app.learning.activation import promote_and_rescore, request_retrain, roll_back_and_rescore
from app.learning.coverage import measured_coverage
from app.learning.registry import (
    card_limitations,
    get_version,
    previous_active,
    runs_of,
    version_status,
    versions_of,
)
from app.learning.retraining import DEAD_RUN_AFTER, retrain_lock_key
from app.models import TrainingRun, utcnow
from app.queues.service import get_queue, policy_of
from app.states import RunStatus

bp = Blueprint("registry", __name__)


def _queue(name: str, action: str | None = None):
    """The named queue, when the user is a member (whose role may do `action`, if given)."""
    queue = get_queue(session=db_session(), name=name, user=current_user)
    if action is not None:
        require(current_user, action)
    return queue


def _may(action: str) -> bool:
    return current_user.role in PERMISSIONS[action]


def _is_htmx() -> bool:
    """An htmx request for the fragment (boosted navigation and history restores get pages)."""
    h = request.headers
    return "HX-Request" in h and "HX-History-Restore-Request" not in h and "HX-Boosted" not in h


def _ago(when: datetime) -> str:
    """How long ago, to the second while it is under two minutes (a run in progress)."""
    seconds = max(0, int((utcnow() - when).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _asked_runs(queue_id: int, runs: list[TrainingRun]) -> list[dict]:
    """Retraining runs RQ holds for the queue that have no training-run row yet: jobs
    waiting for a worker, and started ones that have not recorded their run (it records
    itself once it holds the queue's lock). Empty when Redis is not answering.

    Reads the two job ids enqueue_retrain uses: the run and a person's follow-up behind it.
    """
    conn = redis_conn()
    now = utcnow()
    try:
        jobs = Job.fetch_many([f"retrain-q{queue_id}", f"retrain-q{queue_id}-next"], conn)
        locked = None
        asked = []
        for job in jobs:
            if job is None:
                continue
            status = job.get_status(refresh=False)
            if status in ("queued", "deferred", "scheduled"):
                state = "queued"
            elif status == "started" and job.started_at is not None:
                started = _aware(job.started_at)
                if any(r.started_at >= started for r in runs):
                    continue  # its run is recorded: shown from the table
                if locked is None:
                    locked = bool(conn.exists(retrain_lock_key(queue_id)))
                # Without the lock: about to take it, or a dead worker's job RQ still lists.
                if not locked and now - started >= DEAD_RUN_AFTER:
                    continue
                state = "started"
            else:
                continue
            asked.append(
                {
                    "state": state,
                    "reason": (job.kwargs or {}).get("reason", "requested"),
                    "asked_at": _aware(job.enqueued_at or job.created_at),
                }
            )
    except RedisError:
        return []
    return asked


@bp.get("/queues/<name>/models")
@login_required
def index(name: str):
    """The page, or for htmx the registry fragment, which polls while a run is under way."""
    session = db_session()
    queue = _queue(name)
    versions = versions_of(session=session, queue=queue)
    runs = runs_of(session=session, queue=queue)
    running = [r for r in runs if r.status == RunStatus.RUNNING]
    asked = _asked_runs(queue.id, runs)
    template = "models/_registry.html" if _is_htmx() else "models/index.html"
    response = make_response(
        render_template(
            template,
            queue=queue,
            policy=policy_of(queue),
            versions=versions,
            active=next((v for v in versions if v.active), None),
            previous=previous_active(session=session, queue=queue),
            names={v.id: v.version for v in versions},
            runs=runs,
            running=running,
            asked=asked,
            in_progress=bool(running or asked),
            ago=_ago,
            status=version_status,
            may_retrain=_may("retrain"),
            may_promote=_may("promote"),
        )
    )
    response.headers["Vary"] = "HX-Request"
    # The fragment and the page answer the same URL: neither may be cached for the other.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/queues/<name>/models/<version>")
@login_required
def card(name: str, version: str):
    session = db_session()
    queue = _queue(name)
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
        # Coverage on people's decisions since it was trained (its sets, while it was active).
        recent=measured_coverage(session=session, queue=queue, version=row),
    )


@bp.post("/queues/<name>/models/retrain")
@login_required
def retrain(name: str):
    queue = _queue(name, "retrain")
    try:
        request_retrain(redis=redis_conn(), queue=queue, user=current_user)
        flash("Retraining has started. The new version appears here when it is done.", "ok")
    except ServiceUnavailable:
        flash("The job queue is not answering; retraining could not be started.", "error")
    return redirect(url_for("registry.index", name=name))


@bp.post("/queues/<name>/models/<version>/promote")
@login_required
def promote_version(name: str, version: str):
    queue = _queue(name, "promote")
    row = promote_and_rescore(
        session=write_session(),
        engine=current_app.extensions["loupe.engine"],
        redis=redis_conn(),
        queue=queue,
        version=version,
        user=current_user,
    )
    flash(f"{row.version} is now the active model. Waiting items are being re-scored.", "ok")
    return redirect(url_for("registry.index", name=name))


@bp.post("/queues/<name>/models/rollback")
@login_required
def rollback_version(name: str):
    queue = _queue(name, "promote")
    row = roll_back_and_rescore(
        session=write_session(),
        engine=current_app.extensions["loupe.engine"],
        redis=redis_conn(),
        queue=queue,
        user=current_user,
    )
    flash(
        f"Rolled back: {row.version} is the active model again. Waiting items are being re-scored.",
        "ok",
    )
    return redirect(url_for("registry.index", name=name))
