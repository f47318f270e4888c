"""Reviewing over the API: claim the next item, decide, give it back, and the review
page's other actions (escalate, flag, heartbeat, undo, reopen)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from app.api.endpoint import endpoint
from app.api.schemas import DecisionIn, EscalateIn, FlagIn, HeartbeatOut
from app.errors import Gone
from app.extensions import redis_conn, write_session
from app.learning.outbox import hand_over_outbox
from app.models import Item, Queue, User, id_of
from app.review import actions
from app.review.service import decide, item_json
from app.review.workflow import next_for_reviewer, skip

bp = Blueprint("claims", __name__)


def _claim_json(session, claim, item, user) -> dict:
    return {
        "claim": {
            "token": claim.token,
            "expires_at": claim.expires_at.isoformat(),
            "item": item_json(session=session, item=item, viewer=user),
        }
    }


def _reopened_json(session, back, user) -> dict:
    return {
        **_claim_json(session, back.claim, back.item, user),
        "previous_label": back.previous_label,
    }


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
    body = _claim_json(session, claim, session.get(Item, claim.item_id), user)
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
    return jsonify(item_json(session=session, item=decision.item, viewer=user))


@bp.delete("/claims/<token>")
@endpoint(tag="review", ok={204: None})
def release_view(user: User, token: str):
    """Give the item back to the queue (a skip: the caller's next claims pass it over for a
    while, unless nothing else is left)."""
    session = write_session()
    skip(session=session, token=token, user=user)
    session.commit()
    return Response(status=204)


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
    return jsonify(
        {**item_json(session=session, item=item, viewer=user), "reason": body.reason.strip()}
    )


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
    return jsonify({**item_json(session=session, item=item, viewer=user), "flags": flags})


@bp.post("/claims/<token>/heartbeat")
@endpoint(tag="review", ok={200: HeartbeatOut}, errors=(410,))
def heartbeat_view(user: User, token: str):
    """Extend the claim's lease by the queue's lease length from now; 410 once the claim is
    lost (expired, released or decided)."""
    session = write_session()
    expires = _on_claim(session, lambda: actions.heartbeat(session=session, token=token, user=user))
    return jsonify({"expires_at": expires.isoformat()})


@bp.post("/queues/<name>/undo")
@endpoint(tag="review", permission="review", errors=(409,))
def undo_view(user: User, queue: Queue):
    """Take back the caller's last decision in this queue (within the undo window) and hand
    the item back under a new claim, shaped as POST .../claims answers. 404 when there is
    nothing recent to undo; 409 when a model trained on it or someone is reviewing it."""
    session = write_session()
    back = actions.undo_last(session=session, queue=queue, user=user)
    body = _reopened_json(session, back, user)
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
    back = actions.reopen(session=session, review_id=id_of(review), user=user)
    body = _reopened_json(session, back, user)
    session.commit()
    return jsonify(body)
