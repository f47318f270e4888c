"""Queues over the API: create one, list the caller's, read one, change its policy."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy.exc import IntegrityError

from app.api.endpoint import endpoint, json_object
from app.api.schemas import PolicyChangesOut, PolicyPreviewOut, SlaOut
from app.desk.adjudication import waiting_counts
from app.desk.consensus import overlap_status
from app.errors import Conflict
from app.extensions import db_session, redis_conn, write_session
from app.learning.activation import retrain_for_policy
from app.models import Queue, User, id_of
from app.policy.preview import preview_policy
from app.queues.policy_changes import change_policy, policy_history
from app.queues.service import (
    Policy,
    QueueIn,
    create_queue,
    item_counts,
    policy_of,
    queue_json,
    queues_for,
    training_counts,
)
from app.queues.sla import sla_status

bp = Blueprint("queues", __name__)


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
    queue_id = id_of(queue)
    answer = queue_json(queue, item_counts(session=session, queue_ids=[queue_id])[queue_id])
    return jsonify({**answer, "policy": policy_of(queue).model_dump()}), 201


@bp.patch("/queues/<name>/policy")
@endpoint(tag="queues", permission="configure", body=Policy, view_reads_body=True)
def update_policy_view(queue: Queue, user: User):
    """Change some of the queue's policy fields (routing, retraining, coverage, metric,
    features, rules, target precision, service level); the others keep their values. Applies
    to the next items; a change to coverage, target_precision, confidence or features also
    starts a retraining run, whose version the usual promotion gate promotes or not. Every
    change is recorded with who and when (`GET .../policy/changes`)."""
    changes = json_object()
    session = write_session()
    policy, before, _ = change_policy(
        session=session, queue=queue, user=user, changes=changes, via="api"
    )
    session.commit()
    retraining = retrain_for_policy(
        redis=redis_conn(), queue=queue, user=user, before=before, after=policy.model_dump()
    )
    return jsonify({"name": queue.name, "policy": policy.model_dump(), "retraining": retraining})


@bp.post("/queues/<name>/policy/preview")
@endpoint(
    tag="queues",
    permission="configure",
    body=Policy,
    view_reads_body=True,
    ok={200: PolicyPreviewOut},
)
def preview_policy_view(queue: Queue):
    """What changing these policy fields would do, before saving: the share of the queue's
    500 newest items with a prediction that would be auto-accepted, audited or reviewed,
    the reviews they would need, and the waiting items past or nearing the deadline, under
    the current and the proposed policy. Validated exactly as `PATCH .../policy`; nothing
    is saved."""
    preview = preview_policy(session=db_session(), queue=queue, changes=json_object())
    return jsonify(preview)


@bp.get("/queues/<name>/policy/changes")
@endpoint(tag="queues", permission="configure", ok={200: PolicyChangesOut})
def policy_changes_view(queue: Queue):
    """The queue's policy changes, newest first (the last 50): who, when, from the page or
    the API, and each changed field's value before and after (lead, scientist, admin)."""
    return jsonify({"changes": policy_history(session=db_session(), queue=queue)})


@bp.get("/queues/<name>/sla")
@endpoint(tag="queues", ok={200: SlaOut})
def sla_view(queue: Queue):
    """The queue's service level (members): `sla_hours`, the oldest undecided item's age
    against it, items nearing their deadline, and breaches: items decided after their
    deadline (arrival + sla_hours) and items still undecided past it."""
    return jsonify(sla_status(session=db_session(), queue=queue))


@bp.get("/queues")
@endpoint(tag="queues")
def list_queues_view(user: User):
    """The queues the caller belongs to, with item counts and how many items wait for a
    lead (`waiting_for_lead`)."""
    session = db_session()
    queues = queues_for(session=session, user=user)
    ids = [id_of(q) for q in queues]
    counts = item_counts(session=session, queue_ids=ids)
    waiting = waiting_counts(session=session, queue_ids=ids)
    return jsonify(
        {
            "queues": [
                {**queue_json(q, counts[id_of(q)]), "waiting_for_lead": waiting[id_of(q)]}
                for q in queues
            ]
        }
    )


@bp.get("/queues/<name>")
@endpoint(tag="queues")
def get_queue_view(queue: Queue):
    """One queue with its policy, counts, training backlog, items waiting for a lead, and
    whether it has the members its overlap needs (`overlap.short`, with a message)."""
    session = db_session()
    queue_id = id_of(queue)
    body = queue_json(queue, item_counts(session=session, queue_ids=[queue_id])[queue_id])
    policy = policy_of(queue)
    body["policy"] = policy.model_dump()
    body["training"] = training_counts(session=session, queue=queue)
    body["waiting_for_lead"] = waiting_counts(session=session, queue_ids=[queue_id])[queue_id]
    body["overlap"] = overlap_status(
        session=session, queue=queue, reviews_required=policy.reviews_required
    )
    body["sla"] = sla_status(session=session, queue=queue)
    return jsonify(body)
