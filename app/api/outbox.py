"""Failed jobs through the API, for admins: the parked outbox rows, and retrying one.

The views join the api blueprint (/api/v1) and resolve their caller themselves: a bearer
token (so no CSRF check: no cookie says who calls) whose user may manage jobs.
"""

from __future__ import annotations

from flask import current_app, jsonify, request
from pydantic import BaseModel
from spectree import Response as Doc

from app.api.routes import bp
from app.api.schemas import ErrorOut
from app.auth.service import require, user_for_token
from app.errors import Unauthorized
from app.extensions import csrf, db_session, openapi, redis_conn, write_session
from app.learning.outbox import relay_outbox
from app.learning.parking import parked_rows, retry_parked


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


ERRORS = {"HTTP_401": ErrorOut, "HTTP_403": ErrorOut}


def _admin() -> None:
    """401 without a valid bearer token, 403 unless its user may manage jobs (admins)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send 'Authorization: Bearer <token>'.")
    user = user_for_token(session=db_session(), token=token.strip())
    if user is None:
        raise Unauthorized("That token is not valid.")
    require(user, "manage_jobs")


def _json(row: dict) -> dict:
    return {
        **{k: row[k] for k in ParkedJobOut.model_fields},
        "created_at": row["created_at"].isoformat(),
        "parked_at": row["parked_at"].isoformat(),
    }


@bp.get("/outbox/parked")
@csrf.exempt
@openapi.validate(resp=Doc(HTTP_200=ParkedOut, **ERRORS), skip_validation=True, tags=["operations"])
def parked_view():
    """Outbox rows the relay parked after their job failed LOUPE_OUTBOX_MAX_ATTEMPTS times,
    newest first, each with the error of its last attempt (admin)."""
    _admin()
    return jsonify({"parked": [_json(r) for r in parked_rows(session=db_session())]})


@bp.post("/outbox/<int:outbox_id>/retry")
@csrf.exempt
@openapi.validate(
    resp=Doc(HTTP_202=RetryOut, HTTP_404=ErrorOut, HTTP_409=ErrorOut, **ERRORS),
    skip_validation=True,
    tags=["operations"],
)
def retry_view(outbox_id: int):
    """Hand a parked row to the workers again, with a fresh count of attempts (admin); 409
    when it is not parked."""
    _admin()
    session = write_session()
    row = retry_parked(session=session, outbox_id=outbox_id)
    session.commit()
    relay_outbox(current_app.extensions["loupe.engine"], redis_conn())
    return jsonify({"id": row.id, "state": "retrying"}), 202
