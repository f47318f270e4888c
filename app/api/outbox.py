"""Failed jobs over the API, for admins: the parked outbox rows, and retrying one."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from pydantic import BaseModel

from app.api.endpoint import endpoint
from app.extensions import db_session, redis_conn, write_session
from app.learning.outbox import relay_outbox
from app.learning.parking import parked_rows, retry_parked

bp = Blueprint("outbox", __name__)


class ParkedJobOut(BaseModel):
    id: int
    kind: str
    queue: str
    external_id: str | None
    model_version: str | None
    attempts: int
    created_at: str
    parked_at: str
    error: str | None
    traceback: str | None


class ParkedOut(BaseModel):
    parked: list[ParkedJobOut]


class RetryOut(BaseModel):
    id: int
    state: str


def _json(row: dict) -> dict:
    return {
        **{k: row[k] for k in ParkedJobOut.model_fields},
        "created_at": row["created_at"].isoformat(),
        "parked_at": row["parked_at"].isoformat(),
    }


@bp.get("/outbox/parked")
@endpoint(tag="operations", permission="manage_jobs", ok={200: ParkedOut})
def parked_view():
    """Outbox rows the relay parked after their job failed LOUPE_OUTBOX_MAX_ATTEMPTS times,
    newest first, each with the error of its last attempt (admin)."""
    return jsonify({"parked": [_json(r) for r in parked_rows(session=db_session())]})


@bp.post("/outbox/<int:outbox_id>/retry")
@endpoint(tag="operations", permission="manage_jobs", ok={202: RetryOut}, errors=(409,))
def retry_view(outbox_id: int):
    """Hand a parked row to the workers again, with a fresh count of attempts (admin); 409
    when it is not parked."""
    session = write_session()
    row = retry_parked(session=session, outbox_id=outbox_id)
    session.commit()
    relay_outbox(current_app.extensions["loupe.engine"], redis_conn())
    return jsonify({"id": row.id, "state": "retrying"}), 202
