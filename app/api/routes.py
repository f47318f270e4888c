"""The v1 JSON API: parse, call one domain function, serialise."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context
from sqlalchemy.exc import IntegrityError, OperationalError

from app.api.endpoint import endpoint, json_object
from app.api.schemas import (
    DecisionIn,
    EscalateIn,
    FlagIn,
    HeartbeatOut,
    IngestOut,
    LabelsQuery,
    RetrainOut,
)
from app.db import new_session
from app.errors import (
    Conflict,
    Gone,
    NotFound,
    TooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from app.exports.service import FORMATS, parse_since, stream_labels
from app.extensions import db_session, redis_conn, write_session
from app.ingest.schemas import BatchIn
from app.ingest.service import ingest_items, parse_json_batch, parse_ndjson, score_items
from app.learning.activation import promote_and_rescore, request_retrain, roll_back_and_rescore
from app.learning.outbox import hand_over_outbox
from app.learning.registry import (
    get_version,
    run_json,
    runs_of,
    stream_snapshot,
    version_json,
    versions_of,
)
from app.models import Item, Queue, User
from app.queues.service import (
    Policy,
    QueueIn,
    create_queue,
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


@bp.post("/queues")
@endpoint(tag="queues", permission="create_queue", body=QueueIn, ok={201: None}, errors=(409,))
def create_queue_view(user: User, body: QueueIn):
    """Create a queue (admin, lead)."""
    session = write_session()
    try:
        queue = create_queue(
            session=session, data=body.model_dump(exclude_unset=True), creator=user
        )
        session.commit()
    except IntegrityError:
        # Two requests raced for the same name: the database's unique index decided.
        session.rollback()
        raise Conflict(f"A queue named {body.name!r} already exists.") from None
    body_out = queue_json(queue, item_counts(session=session, queue_ids=[queue.id])[queue.id])
    return jsonify({**body_out, "policy": policy_of(queue).model_dump()}), 201


@bp.patch("/queues/<name>/policy")
@endpoint(tag="queues", permission="configure", body=Policy, view_reads_body=True)
def update_policy_view(queue: Queue):
    """Change some of the queue's policy fields (routing, retraining, coverage, metric,
    features, rules); the others keep their values. Applies to the next items and the next
    training run."""
    changes = json_object()
    session = write_session()
    policy = update_policy(session=session, queue=queue, changes=changes)
    session.commit()
    return jsonify({"name": queue.name, "policy": policy.model_dump()})


@bp.get("/queues")
@endpoint(tag="queues")
def list_queues_view(user: User):
    """The queues the caller belongs to, with item counts."""
    session = db_session()
    queues = queues_for(session=session, user=user)
    counts = item_counts(session=session, queue_ids=[q.id for q in queues])
    return jsonify({"queues": [queue_json(q, counts[q.id]) for q in queues]})


@bp.get("/queues/<name>")
@endpoint(tag="queues")
def get_queue_view(queue: Queue):
    """One queue with its policy, counts and training backlog."""
    session = db_session()
    body = queue_json(queue, item_counts(session=session, queue_ids=[queue.id])[queue.id])
    body["policy"] = policy_of(queue).model_dump()
    body["training"] = training_counts(session=session, queue=queue)
    return jsonify(body)


@bp.post("/queues/<name>/items")
@endpoint(
    tag="items",
    permission="ingest",
    body=BatchIn,
    view_reads_body=True,
    ok={200: IngestOut},
    errors=(413, 415),
)
def ingest_view(queue: Queue):
    """Push a batch of items: `{"items": [...]}` as JSON, or one item per line as NDJSON."""
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
    session = db_session()
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
@endpoint(tag="items")
def get_item_view(queue: Queue, external_id: str):
    """One item with its prediction, route, reviews and final label."""
    session = db_session()
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
@endpoint(tag="review", permission="review", ok={200: None, 204: None})
def claim_view(user: User, queue: Queue):
    """Lease the next item to the caller; 204 when nothing is waiting."""
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
@endpoint(tag="review", body=DecisionIn, errors=(409, 410))
def decision_view(user: User, token: str, body: DecisionIn):
    """Record the decision for a claim; the same decision twice is one review."""
    session = write_session()
    decision = _on_claim(
        session,
        lambda: decide(
            session=session, token=token, user=user, label=body.label, comment=body.comment
        ),
    )
    hand_over_outbox(current_app.extensions["loupe.engine"], redis_conn(), decision.outbox_id)
    return jsonify(item_json(session=session, item=decision.item))


@bp.delete("/claims/<token>")
@endpoint(tag="review", ok={204: None})
def release_view(user: User, token: str):
    """Give the item back to the queue (a skip: the caller's next claims pass it over for a
    while, unless nothing else is left)."""
    session = write_session()
    skip(session=session, token=token, user=user)
    session.commit()
    return Response(status=204)


def _on_claim(session, action):
    """Runs one write on the caller's claim and commits it; a lost lease still commits
    whatever releasing it took (the item goes back to the queue) before answering 410."""
    try:
        result = action()
    except Gone:
        session.commit()
        raise
    session.commit()
    return result


@bp.post("/claims/<token>/escalate")
@endpoint(tag="review", body=EscalateIn, errors=(410,))
def escalate_view(user: User, token: str, body: EscalateIn):
    """Send the claimed item to a lead with a reason: it leaves review (status `escalated`)
    and the claim ends. 410 when the claim was already lost."""
    session = write_session()
    item = _on_claim(
        session,
        lambda: actions.escalate(session=session, token=token, user=user, reason=body.reason),
    )
    return jsonify({**item_json(session=session, item=item), "reason": body.reason.strip()})


@bp.post("/claims/<token>/flag")
@endpoint(tag="review", body=FlagIn, errors=(410,))
def flag_view(user: User, token: str, body: FlagIn):
    """Flag the claimed item as suspicious; the caller keeps the claim and still answers.
    The answer is the item with every flag comment on it (`flags`, oldest first)."""
    session = write_session()
    item = _on_claim(
        session,
        lambda: actions.flag(session=session, token=token, user=user, comment=body.comment),
    )
    flags = actions.flags_of(session=session, item_id=item.id)
    return jsonify({**item_json(session=session, item=item), "flags": flags})


@bp.post("/claims/<token>/heartbeat")
@endpoint(tag="review", ok={200: HeartbeatOut}, errors=(410,))
def heartbeat_view(user: User, token: str):
    """Extend the claim's lease by the queue's lease length from now; 410 once the claim is
    lost (expired, released or decided)."""
    session = write_session()
    expires = _on_claim(session, lambda: actions.heartbeat(session=session, token=token, user=user))
    return jsonify({"expires_at": expires.isoformat()})


def _reopened_json(session, back) -> dict:
    return {**_claim_json(session, back.claim, back.item), "previous_label": back.previous_label}


@bp.post("/queues/<name>/undo")
@endpoint(tag="review", permission="review", errors=(409,))
def undo_view(user: User, queue: Queue):
    """Take back the caller's last decision in this queue (within the undo window) and hand
    the item back under a new claim, shaped as POST .../claims answers. 404 when there is
    nothing recent to undo; 409 when a model trained on it or someone is reviewing it."""
    session = write_session()
    back = actions.undo_last(session=session, queue=queue, user=user)
    body = _reopened_json(session, back)
    session.commit()
    return jsonify(body)


@bp.post("/queues/<name>/items/<path:external_id>/reopen")
@endpoint(tag="review", permission="review", errors=(409,))
def reopen_view(user: User, queue: Queue, external_id: str):
    """Reopen the caller's own decision on this item under a new claim (shaped as POST
    .../claims answers). 404 when the caller has no decision on it; 409 once a model has
    trained on its label or while someone is reviewing it."""
    session = write_session()
    review = actions.latest_review(session=session, queue=queue, user=user, external_id=external_id)
    back = actions.reopen(session=session, review_id=review.id, user=user)
    body = _reopened_json(session, back)
    session.commit()
    return jsonify(body)


@bp.get("/queues/<name>/labels")
@endpoint(tag="labels", permission="export", query=LabelsQuery)
def labels_view(queue: Queue):
    """Stream every final label with its provenance as JSONL, CSV or Parquet."""
    fmt = request.args.get("format", "jsonl")
    if fmt not in FORMATS:
        raise ValidationFailed(
            f"format must be one of {', '.join(FORMATS)}.",
            [{"field": "format", "message": "unknown format"}],
        )
    since = parse_since(request.args.get("since"))
    engine = db_session().get_bind()
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
@endpoint(tag="models")
def models_view(queue: Queue):
    """The queue's model versions, newest first, and its recent training runs (with why a
    failed run failed)."""
    session = db_session()
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
        with new_session(session.get_bind(), write=False) as s:
            yield from stream_snapshot(session=s, snapshot_id=snapshot_id)

    return Response(stream_with_context(body()), mimetype="application/x-ndjson")


@bp.post("/queues/<name>/models/retrain")
@endpoint(tag="models", permission="retrain", ok={202: RetrainOut}, errors=(503,))
def retrain_view(user: User, queue: Queue):
    """Start a retraining run; a run already waiting or running is reused."""
    job_id = request_retrain(redis=redis_conn(), queue=queue, user=user)
    return jsonify({"job_id": job_id}), 202
