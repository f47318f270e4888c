"""The v1 JSON API: parse, call one domain function, serialise."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context
from pydantic import ValidationError
from redis.exceptions import RedisError
from spectree import Response as Doc
from sqlalchemy.exc import IntegrityError, OperationalError

from app.api.schemas import (
    DecisionIn,
    ErrorOut,
    EscalateIn,
    FlagIn,
    HeartbeatOut,
    IngestOut,
    LabelsQuery,
    RetrainOut,
)
from app.auth.service import require, user_for_token
from app.db import new_session
from app.errors import (
    Conflict,
    Gone,
    NotFound,
    ServiceUnavailable,
    TooLarge,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
    pydantic_details,
)
from app.exports.service import FORMATS, parse_since, stream_labels
from app.extensions import db_session, openapi, redis_conn, write_session
from app.ingest.schemas import BatchIn
from app.ingest.service import ingest_items, parse_json_batch, parse_ndjson, score_items
from app.learning.outbox import hand_over_outbox, relay_outbox
from app.learning.registry import (
    get_version,
    promote,
    rollback,
    run_json,
    runs_of,
    stream_snapshot,
    version_json,
    versions_of,
)
from app.learning.retraining import enqueue_retrain
from app.models import Item, User
from app.queues.service import (
    QueueIn,
    create_queue,
    get_queue,
    item_counts,
    policy_of,
    queue_json,
    queues_for,
    training_counts,
    update_policy,
)
from app.review import actions
from app.review.service import decide, get_item, item_json
from app.review.workflow import next_for_reviewer, skip

bp = Blueprint("api", __name__, url_prefix="/api/v1")
ERRORS = {"HTTP_401": ErrorOut, "HTTP_403": ErrorOut, "HTTP_404": ErrorOut, "HTTP_422": ErrorOut}


def api_user() -> User:
    """The user behind the bearer token; 401 without a valid one."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send 'Authorization: Bearer <token>'.")
    user = user_for_token(session=db_session(), token=token.strip())
    if user is None:
        raise Unauthorized("That token is not valid.")
    return user


def _json_body() -> dict:
    if b"\\u0000" in request.get_data():
        raise ValidationFailed(
            "NUL characters (\\u0000) are not allowed.", [{"field": "", "message": "NUL"}]
        )
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed(
            "The body must be a JSON object.", [{"field": "", "message": "not a JSON object"}]
        )
    return body


@bp.post("/queues")
@openapi.validate(
    json=QueueIn,
    resp=Doc(HTTP_201=None, HTTP_409=ErrorOut, **ERRORS),
    skip_validation=True,
    tags=["queues"],
)
def create_queue_view():
    """Create a queue (admin, lead)."""
    user = api_user()
    require(user, "create_queue")
    data = _json_body()
    session = write_session()
    try:
        queue = create_queue(session=session, data=data, creator=user)
        session.commit()
    except IntegrityError:
        # Two requests raced for the same name: the database's unique index decided.
        session.rollback()
        raise Conflict(f"A queue named {data.get('name')!r} already exists.") from None
    body = queue_json(queue, item_counts(session=session, queue_ids=[queue.id])[queue.id])
    return jsonify({**body, "policy": policy_of(queue).model_dump()}), 201


@bp.patch("/queues/<name>/policy")
@openapi.validate(resp=Doc(HTTP_200=None, **ERRORS), skip_validation=True, tags=["queues"])
def update_policy_view(name: str):
    """Change some of the queue's policy fields (routing, retraining, coverage, metric,
    features, rules); the others keep their values. Applies to the next items and the next
    training run."""
    user = api_user()
    session = db_session()
    queue = get_queue(session=session, name=name, user=user)
    require(user, "configure")
    changes = _json_body()
    session = write_session()
    policy = update_policy(session=session, queue=queue, changes=changes)
    session.commit()
    return jsonify({"name": queue.name, "policy": policy.model_dump()})


@bp.get("/queues")
@openapi.validate(resp=Doc(HTTP_200=None, HTTP_401=ErrorOut), skip_validation=True, tags=["queues"])
def list_queues_view():
    """The queues the caller belongs to, with item counts."""
    user = api_user()
    session = db_session()
    queues = queues_for(session=session, user=user)
    counts = item_counts(session=session, queue_ids=[q.id for q in queues])
    return jsonify({"queues": [queue_json(q, counts[q.id]) for q in queues]})


@bp.get("/queues/<name>")
@openapi.validate(resp=Doc(HTTP_200=None, **ERRORS), skip_validation=True, tags=["queues"])
def get_queue_view(name: str):
    """One queue with its policy, counts and training backlog."""
    user = api_user()
    session = db_session()
    queue = get_queue(session=session, name=name, user=user)
    body = queue_json(queue, item_counts(session=session, queue_ids=[queue.id])[queue.id])
    body["policy"] = policy_of(queue).model_dump()
    body["training"] = training_counts(session=session, queue=queue)
    return jsonify(body)


@bp.post("/queues/<name>/items")
@openapi.validate(
    json=BatchIn,
    resp=Doc(HTTP_200=IngestOut, HTTP_413=ErrorOut, **ERRORS),
    skip_validation=True,
    tags=["items"],
)
def ingest_view(name: str):
    """Push a batch of items: `{"items": [...]}` as JSON, or one item per line as NDJSON."""
    user = api_user()
    session = db_session()
    queue = get_queue(session=session, name=name, user=user)
    require(user, "ingest")
    mimetype = request.mimetype
    body = request.get_data()
    if mimetype == "application/json":
        items = parse_json_batch(body)
    elif mimetype in ("application/x-ndjson", "application/jsonl", "application/ndjson"):
        items = parse_ndjson(body)
    else:
        raise UnsupportedMediaType(
            'Send application/json ({"items": [...]}) or application/x-ndjson (one item a line).'
        )
    limit = current_app.config["LOUPE_SETTINGS"].max_batch_items
    if len(items) > limit:
        raise TooLarge(f"A batch holds at most {limit} items; this one has {len(items)}.")
    scores = score_items(session=session, queue=queue, items=items)
    for attempt in range(3):
        session = write_session()
        try:
            result = ingest_items(session=session, queue=queue, items=items, scores=scores)
            session.commit()
            return jsonify(result)
        except OperationalError as exc:
            # A deadlock with an overlapping batch: PostgreSQL rolled this one back whole.
            session.rollback()
            if getattr(exc.orig, "sqlstate", None) != "40P01" or attempt == 2:
                raise
    raise AssertionError("unreachable")


@bp.get("/queues/<name>/items/<path:external_id>")
@openapi.validate(resp=Doc(HTTP_200=None, **ERRORS), skip_validation=True, tags=["items"])
def get_item_view(name: str, external_id: str):
    """One item with its prediction, route, reviews and final label."""
    user = api_user()
    session = db_session()
    queue = get_queue(session=session, name=name, user=user)
    return jsonify(
        item_json(
            session=session, item=get_item(session=session, queue=queue, external_id=external_id)
        )
    )


def _claim_json(session, claim, item) -> dict:
    return {
        "claim": {
            "token": claim.token,
            "expires_at": claim.expires_at.isoformat(),
            "item": item_json(session=session, item=item),
        }
    }


@bp.post("/queues/<name>/claims")
@openapi.validate(
    resp=Doc(HTTP_200=None, HTTP_204=None, **ERRORS), skip_validation=True, tags=["review"]
)
def claim_view(name: str):
    """Lease the next item to the caller; 204 when nothing is waiting."""
    user = api_user()
    session = db_session()
    queue = get_queue(session=session, name=name, user=user)
    require(user, "review")
    session = write_session()
    claim = next_for_reviewer(
        session=session, queue=queue, user=user, resume=False, lease_ahead=False
    ).claim
    if claim is None:
        session.commit()
        return Response(status=204)
    body = _claim_json(session, claim, session.get(Item, claim.item_id))
    session.commit()
    return jsonify(body)


@bp.post("/claims/<token>/decision")
@openapi.validate(
    json=DecisionIn,
    resp=Doc(HTTP_200=None, HTTP_409=ErrorOut, HTTP_410=ErrorOut, **ERRORS),
    skip_validation=True,
    tags=["review"],
)
def decision_view(token: str):
    """Record the decision for a claim; the same decision twice is one review."""
    user = api_user()
    try:
        data = DecisionIn.model_validate(_json_body())
    except ValidationError as exc:
        raise ValidationFailed(
            "The decision is not valid.", pydantic_details(exc.errors())
        ) from None
    session = write_session()
    try:
        decision = decide(
            session=session, token=token, user=user, label=data.label, comment=data.comment
        )
    except Gone:
        # A lost lease still releases the item: keep that part of the work.
        session.commit()
        raise
    session.commit()
    hand_over_outbox(current_app.extensions["loupe.engine"], redis_conn(), decision.outbox_id)
    return jsonify(item_json(session=session, item=decision.item))


@bp.delete("/claims/<token>")
@openapi.validate(resp=Doc(HTTP_204=None, **ERRORS), skip_validation=True, tags=["review"])
def release_view(token: str):
    """Give the item back to the queue (a skip: the caller's next claims pass it over for a
    while, unless nothing else is left)."""
    user = api_user()
    session = write_session()
    skip(session=session, token=token, user=user)
    session.commit()
    return Response(status=204)


def _body_as(model, what: str):
    """The JSON object body validated by `model`; 422 in the API's error shape."""
    try:
        return model.model_validate(_json_body())
    except ValidationError as exc:
        raise ValidationFailed(
            f"The {what} is not valid.", pydantic_details(exc.errors())
        ) from None


def _on_claim(session, action):
    """Runs one write on the caller's claim and commits it; a lost lease still commits
    whatever releasing it took, as decision_view does, before answering 410."""
    try:
        result = action()
    except Gone:
        session.commit()
        raise
    session.commit()
    return result


@bp.post("/claims/<token>/escalate")
@openapi.validate(
    json=EscalateIn,
    resp=Doc(HTTP_200=None, HTTP_410=ErrorOut, **ERRORS),
    skip_validation=True,
    tags=["review"],
)
def escalate_view(token: str):
    """Send the claimed item to a lead with a reason: it leaves review (status `escalated`)
    and the claim ends. 410 when the claim was already lost."""
    user = api_user()
    data = _body_as(EscalateIn, "escalation")
    session = write_session()
    item = _on_claim(
        session,
        lambda: actions.escalate(session=session, token=token, user=user, reason=data.reason),
    )
    return jsonify({**item_json(session=session, item=item), "reason": data.reason.strip()})


@bp.post("/claims/<token>/flag")
@openapi.validate(
    json=FlagIn,
    resp=Doc(HTTP_200=None, HTTP_410=ErrorOut, **ERRORS),
    skip_validation=True,
    tags=["review"],
)
def flag_view(token: str):
    """Flag the claimed item as suspicious; the caller keeps the claim and still answers.
    The answer is the item with every flag comment on it (`flags`, oldest first)."""
    user = api_user()
    data = _body_as(FlagIn, "flag")
    session = write_session()
    item = _on_claim(
        session,
        lambda: actions.flag(session=session, token=token, user=user, comment=data.comment),
    )
    flags = actions.flags_of(session=session, item_id=item.id)
    return jsonify({**item_json(session=session, item=item), "flags": flags})


@bp.post("/claims/<token>/heartbeat")
@openapi.validate(
    resp=Doc(HTTP_200=HeartbeatOut, HTTP_410=ErrorOut, **ERRORS),
    skip_validation=True,
    tags=["review"],
)
def heartbeat_view(token: str):
    """Extend the claim's lease by the queue's lease length from now; 410 once the claim is
    lost (expired, released or decided)."""
    user = api_user()
    session = write_session()
    expires = _on_claim(session, lambda: actions.heartbeat(session=session, token=token, user=user))
    return jsonify({"expires_at": expires.isoformat()})


def _reopened_json(session, back) -> dict:
    return {**_claim_json(session, back.claim, back.item), "previous_label": back.previous_label}


@bp.post("/queues/<name>/undo")
@openapi.validate(
    resp=Doc(HTTP_200=None, HTTP_409=ErrorOut, **ERRORS), skip_validation=True, tags=["review"]
)
def undo_view(name: str):
    """Take back the caller's last decision in this queue (within the undo window) and hand
    the item back under a new claim, shaped as POST .../claims answers. 404 when there is
    nothing recent to undo; 409 when a model trained on it or someone is reviewing it."""
    user = api_user()
    session = db_session()
    queue = get_queue(session=session, name=name, user=user)
    require(user, "review")
    session = write_session()
    back = actions.undo_last(session=session, queue=queue, user=user)
    body = _reopened_json(session, back)
    session.commit()
    return jsonify(body)


@bp.post("/queues/<name>/items/<path:external_id>/reopen")
@openapi.validate(
    resp=Doc(HTTP_200=None, HTTP_409=ErrorOut, **ERRORS), skip_validation=True, tags=["review"]
)
def reopen_view(name: str, external_id: str):
    """Reopen the caller's own decision on this item under a new claim (shaped as POST
    .../claims answers). 404 when the caller has no decision on it; 409 once a model has
    trained on its label or while someone is reviewing it."""
    user = api_user()
    session = db_session()
    queue = get_queue(session=session, name=name, user=user)
    require(user, "review")
    session = write_session()
    review = actions.latest_review(session=session, queue=queue, user=user, external_id=external_id)
    back = actions.reopen(session=session, review_id=review.id, user=user)
    body = _reopened_json(session, back)
    session.commit()
    return jsonify(body)


@bp.get("/queues/<name>/labels")
@openapi.validate(
    query=LabelsQuery, resp=Doc(HTTP_200=None, **ERRORS), skip_validation=True, tags=["labels"]
)
def labels_view(name: str):
    """Stream every final label with its provenance as JSONL, CSV or Parquet."""
    user = api_user()
    session = db_session()
    queue = get_queue(session=session, name=name, user=user)
    require(user, "export")
    fmt = request.args.get("format", "jsonl")
    if fmt not in FORMATS:
        raise ValidationFailed(
            f"format must be one of {', '.join(FORMATS)}.",
            [{"field": "format", "message": "unknown format"}],
        )
    since = parse_since(request.args.get("since"))
    engine = session.get_bind()
    queue_id = queue.id

    def body():
        # Its own session: the request's one is closed before streaming starts.
        with new_session(engine) as s:
            yield from stream_labels(session=s, queue_id=queue_id, fmt=fmt, since=since)

    filename = f"{queue.name}-labels.{fmt}"
    return Response(
        stream_with_context(body()),
        mimetype=FORMATS[fmt].split(";")[0],
        content_type=FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.get("/queues/<name>/models")
@openapi.validate(resp=Doc(HTTP_200=None, **ERRORS), skip_validation=True, tags=["models"])
def models_view(name: str):
    """The queue's model versions, newest first, and its recent training runs (with why a
    failed run failed)."""
    user = api_user()
    session = db_session()
    queue = get_queue(session=session, name=name, user=user)
    versions = versions_of(session=session, queue=queue)
    names = {v.id: v.version for v in versions}
    listed = []
    for v in versions:
        entry = version_json(v)
        entry.pop("card")
        listed.append(entry)
    runs = [run_json(r, names) for r in runs_of(session=session, queue=queue)]
    return jsonify({"versions": listed, "runs": runs})


@bp.get("/queues/<name>/models/<version>")
@openapi.validate(resp=Doc(HTTP_200=None, **ERRORS), skip_validation=True, tags=["models"])
def model_view(name: str, version: str):
    """One version with its model card: data, parameters, metrics, calibration, coverage."""
    user = api_user()
    session = db_session()
    queue = get_queue(session=session, name=name, user=user)
    return jsonify(version_json(get_version(session=session, queue=queue, version=version)))


def _change_active(name: str, change) -> Response:
    """Runs `change(session=, queue=)` (promote or roll back), then has the waiting items
    re-scored by the version it made active."""
    user = api_user()
    session = db_session()
    queue = get_queue(session=session, name=name, user=user)
    require(user, "promote")
    session = write_session()
    row = change(session=session, queue=queue, user=user)
    session.commit()
    # Re-scoring was promised in that transaction; hand it over now (or the relay will).
    relay_outbox(current_app.extensions["loupe.engine"], redis_conn())
    return jsonify(version_json(row))


@bp.post("/queues/<name>/models/<version>/promote")
@openapi.validate(resp=Doc(HTTP_200=None, **ERRORS), skip_validation=True, tags=["models"])
def promote_view(name: str, version: str):
    """Make this version the active one (a roll-back when it is an older one); waiting items
    are then re-scored in the background. 409 when it is already active."""
    return _change_active(name, lambda **kw: promote(version=version, **kw))


@bp.post("/queues/<name>/models/rollback")
@openapi.validate(resp=Doc(HTTP_200=None, **ERRORS), skip_validation=True, tags=["models"])
def rollback_view(name: str):
    """Re-activate the version that was active before the current one."""
    return _change_active(name, rollback)


@bp.get("/queues/<name>/models/<version>/snapshot")
@openapi.validate(resp=Doc(HTTP_200=None, **ERRORS), skip_validation=True, tags=["models"])
def snapshot_view(name: str, version: str):
    """The exact rows the version's training run read, as JSON lines, with each row's part
    (train, conformal, evaluation, left_out)."""
    user = api_user()
    session = db_session()
    queue = get_queue(session=session, name=name, user=user)
    require(user, "export")
    row = get_version(session=session, queue=queue, version=version)
    if row.snapshot_id is None:
        raise NotFound(f"{version} was trained before snapshots were kept.")
    snapshot_id = row.snapshot_id

    def body():
        with new_session(session.get_bind(), write=False) as s:
            yield from stream_snapshot(session=s, snapshot_id=snapshot_id)

    return Response(stream_with_context(body()), mimetype="application/x-ndjson")


@bp.post("/queues/<name>/models/retrain")
@openapi.validate(resp=Doc(HTTP_202=RetrainOut, **ERRORS), skip_validation=True, tags=["models"])
def retrain_view(name: str):
    """Start a retraining run; a run already waiting or running is reused."""
    user = api_user()
    session = db_session()
    queue = get_queue(session=session, name=name, user=user)
    require(user, "retrain")
    try:
        job_id = enqueue_retrain(
            redis_conn(), queue.id, reason=f"requested by {user.name}", follow_up=True
        )
    except RedisError:
        raise ServiceUnavailable(
            "The job queue (Redis) is not answering; retraining could not be started. "
            "Try again in a moment."
        ) from None
    return jsonify({"job_id": job_id}), 202
