"""A queue's model registry over the API: versions and runs, a version's card and
training snapshot, promote, roll back, retrain."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, stream_with_context

from app.api.endpoint import endpoint
from app.api.schemas import RetrainOut
from app.db import new_session
from app.errors import NotFound
from app.extensions import db_engine, db_session, redis_conn, write_session
from app.learning.activation import promote_and_rescore, request_retrain, roll_back_and_rescore
from app.learning.registry import (
    get_version,
    run_json,
    runs_of,
    stream_snapshot,
    version_json,
    versions_of,
)
from app.models import Queue, User, id_of

bp = Blueprint("registry", __name__)


@bp.get("/queues/<name>/models")
@endpoint(tag="models")
def models_view(queue: Queue):
    """The queue's model versions, newest first, and its recent training runs (with why a
    failed run failed)."""
    session = db_session()
    versions = versions_of(session=session, queue=queue)
    names = {id_of(v): v.version for v in versions}
    listed = []
    for v in versions:
        entry = version_json(v)
        entry.pop("card")
        listed.append(entry)
    runs = [run_json(r, names) for r in runs_of(session=session, queue=queue)]
    return jsonify({"versions": listed, "runs": runs})


@bp.get("/queues/<name>/models/<version>")
@endpoint(tag="models")
def model_view(queue: Queue, version: str):
    """One version with its model card: data, parameters, metrics, calibration, coverage."""
    return jsonify(version_json(get_version(session=db_session(), queue=queue, version=version)))


@bp.post("/queues/<name>/models/<version>/promote")
@endpoint(tag="models", permission="promote", errors=(409,))
def promote_view(user: User, queue: Queue, version: str):
    """Make this version the active one (a roll-back when it is an older one); waiting items
    are then re-scored in the background. 409 when it is already active."""
    row = promote_and_rescore(
        session=write_session(),
        engine=current_app.extensions["loupe.engine"],
        redis=redis_conn(),
        queue=queue,
        version=version,
        user=user,
    )
    return jsonify(version_json(row))


@bp.post("/queues/<name>/models/rollback")
@endpoint(tag="models", permission="promote", errors=(409,))
def rollback_view(user: User, queue: Queue):
    """Re-activate the version that was active before the current one."""
    row = roll_back_and_rescore(
        session=write_session(),
        engine=current_app.extensions["loupe.engine"],
        redis=redis_conn(),
        queue=queue,
        user=user,
    )
    return jsonify(version_json(row))


@bp.get("/queues/<name>/models/<version>/snapshot")
@endpoint(tag="models", permission="export")
def snapshot_view(queue: Queue, version: str):
    """The exact rows the version's training run read, as JSON lines, with each row's part
    (train, conformal, evaluation, left_out)."""
    session = db_session()
    row = get_version(session=session, queue=queue, version=version)
    if row.snapshot_id is None:
        raise NotFound(f"{version} was trained before snapshots were kept.")
    snapshot_id = row.snapshot_id

    def body():
        with new_session(db_engine(), write=False) as s:
            yield from stream_snapshot(session=s, snapshot_id=snapshot_id)

    return Response(stream_with_context(body()), mimetype="application/x-ndjson")


@bp.post("/queues/<name>/models/retrain")
@endpoint(tag="models", permission="retrain", ok={202: RetrainOut}, errors=(503,))
def retrain_view(user: User, queue: Queue):
    """Start a retraining run; a run already waiting or running is reused."""
    job_id = request_retrain(redis=redis_conn(), queue=queue, user=user)
    return jsonify({"job_id": job_id}), 202
