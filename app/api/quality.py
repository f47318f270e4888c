"""A queue's quality report over the API: how far its automation can be trusted, and the
lead's answer to an alarm that paused auto-accept."""

from __future__ import annotations

from flask import Blueprint, jsonify

from app.api.endpoint import endpoint
from app.api.schemas import QualityOut, ResumeIn
from app.extensions import db_session, write_session
from app.models import Queue, User
from app.trust.alarms import resume_auto_accept
from app.trust.quality import quality_report

bp = Blueprint("quality", __name__)


@bp.get("/queues/<name>/quality")
@endpoint(tag="queues", ok={200: QualityOut})
def quality_view(queue: Queue):
    """Audited auto-accept precision, candidate-set coverage, input drift and open alarms
    (members of the queue)."""
    return jsonify(quality_report(session=db_session(), queue=queue))


@bp.post("/queues/<name>/auto-accept/resume")
@endpoint(tag="queues", permission="configure", body=ResumeIn, errors=(409,))
def resume_view(queue: Queue, user: User, body: ResumeIn):
    """Resume auto-accept after an alarm paused it, saying why (lead, scientist, admin);
    409 when it is not paused. The open alarm stays listed until its check passes."""
    session = write_session()
    answer = resume_auto_accept(session=session, queue=queue, user=user, reason=body.reason)
    session.commit()
    return jsonify(answer)
