"""The lead's desk over the API: the items waiting for a lead, and the lead's decision."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from app.api.endpoint import endpoint
from app.api.schemas import AdjudicateIn, AdjudicationOut, AdjudicationsOut
from app.desk.adjudication import adjudicate, adjudication_list, waiting_counts
from app.extensions import db_session, redis_conn, write_session
from app.learning.outbox import hand_over_outbox
from app.models import Queue, User, id_of
from app.review.service import item_json

bp = Blueprint("adjudications", __name__)


@bp.get("/queues/<name>/adjudications")
@endpoint(tag="desk", permission="adjudicate", ok={200: AdjudicationsOut})
def adjudications_view(queue: Queue):
    """Escalated items, reviewers' disagreements and flagged items waiting for a lead
    (leads and admins), oldest first (at most 100): each with every review and what its
    reviewer was shown, why it waits, flags, the model's answers and any current label."""
    session = db_session()
    return jsonify(
        {
            "waiting": waiting_counts(session=session, queue_ids=[id_of(queue)])[id_of(queue)],
            "items": adjudication_list(session=session, queue=queue),
        }
    )


@bp.post("/queues/<name>/items/<path:external_id>/adjudicate")
@endpoint(
    tag="desk",
    permission="adjudicate",
    body=AdjudicateIn,
    ok={200: AdjudicationOut},
    errors=(409,),
)
def adjudicate_view(user: User, queue: Queue, external_id: str, body: AdjudicateIn):
    """Decide an item waiting for a lead (leads and admins): the label becomes its final
    label with source `adjudicated` and goes to training like any human label. A flagged
    item's label is confirmed (same label) or replaced while no model has trained on it.
    409 when the item is not waiting for a lead (already decided, perhaps by another lead
    a moment ago) or its label is already trained on; 422 for a label the queue lacks."""
    session = write_session()
    done = adjudicate(
        session=session,
        queue=queue,
        external_id=external_id,
        user=user,
        label=body.label,
        comment=body.comment,
    )
    session.commit()
    hand_over_outbox(current_app.extensions["loupe.engine"], redis_conn(), done.outbox_id)
    answer = item_json(session=session, item=done.item, viewer=user)
    answer["adjudication"] = {
        "outcome": done.outcome,
        "label": done.label.value,
        "previous_label": done.previous_label,
        "by": user.name,
        "comment": (body.comment or "").strip() or None,
    }
    return jsonify(answer)
