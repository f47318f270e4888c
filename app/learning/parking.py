"""Outbox rows whose job keeps failing: parked with the job's error, listed, retried.

The relay (app.learning.outbox.relay_outbox) hands a row to RQ again when its last hand-over is
STALE_AFTER old and the row is still not done. Before it does, `sort_out` asks RQ what
became of that hand-over's job: still queued or running (the row waits, nothing counted),
failed (its error is kept on the row) or gone. A row handed over
LOUPE_OUTBOX_MAX_ATTEMPTS times whose job failed or was lost each time is parked: the relay
leaves it alone until an admin retries it (the Failed jobs page, or the API).
"""

from __future__ import annotations

import logging
from datetime import datetime

from redis import Redis
from redis.exceptions import RedisError
from rq.job import Job, JobStatus
from sqlalchemy import func, select, update
from sqlmodel import Session, col

from app.db import session_scope
from app.errors import Conflict, NotFound
from app.models import Item, Label, ModelVersion, Outbox, Queue, utcnow
from app.settings import current_settings

log = logging.getLogger(__name__)

# What a row parked without a recorded error says: its jobs vanished instead of failing.
LOST = "the job was lost on every hand-over (Redis lost it, or no worker finished it)"
# Tracebacks are kept whole unless longer than this; the end, which names the error, stays.
MAX_ERROR = 20_000
# Ended without doing the work. A job in any state but these and finished is under way
# (queued, started, deferred, scheduled, ...).
_FAILED = {JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}


def outbox_job_id(outbox_id: int) -> str:
    """The RQ job id an outbox row's job has (app.learning.outbox and .rescoring name
    them so)."""
    return f"outbox-{outbox_id}"


def _job_error(job: Job, status: JobStatus) -> str:
    """The failed job's exception, as the worker recorded it (the whole traceback)."""
    result = job.latest_result()
    text = result.exc_string if result is not None else None
    if not text:
        return f"the job was {JobStatus(status).value} without an error message"
    return text.strip()[-MAX_ERROR:]


def sort_out(
    engine,
    conn: Redis,
    rows: list[tuple],
    *,
    now: datetime | None = None,
    max_attempts: int | None = None,
) -> list[tuple]:
    """Of the due outbox rows the relay is about to hand over, the ones it should.

    A row handed over before whose job is still queued or running is not handed over again
    (its hand-over time is renewed, so it is looked at again only after STALE_AFTER); a
    failed job's error is recorded on its row; a row whose `max_attempts` hand-overs all
    failed or were lost is parked (LOUPE_OUTBOX_MAX_ATTEMPTS unless given). Reads, then
    asks Redis, then writes, so no transaction waits on Redis. When Redis does not answer,
    every row is returned: the hand-over will fail the same way and say so.
    """
    if not rows:
        return rows
    now = now or utcnow()
    with session_scope(engine, write=False) as session:
        handed: dict[int, int] = dict(
            session.execute(
                select(col(Outbox.id), col(Outbox.attempts)).where(
                    col(Outbox.id).in_([r[0] for r in rows]), col(Outbox.enqueued_at).is_not(None)
                )
            ).all()
        )
    if not handed:
        return rows
    try:
        jobs = Job.fetch_many([outbox_job_id(i) for i in handed], connection=conn)
        waiting: list[int] = []
        errors: dict[int, str | None] = {}
        for outbox_id, job in zip(handed, jobs, strict=True):
            status = job.get_status(refresh=False) if job is not None else None
            if job is not None and status in _FAILED:
                errors[outbox_id] = _job_error(job, status)
            elif status is None or status == JobStatus.FINISHED:
                # Gone, or finished without doing the row's work: lost either way.
                errors[outbox_id] = None
            else:
                waiting.append(outbox_id)
    except RedisError:
        return rows
    if errors and max_attempts is None:
        max_attempts = current_settings().outbox_max_attempts
    park = {i for i in errors if handed[i] >= (max_attempts or 1)}
    with session_scope(engine) as session:
        if waiting:
            session.execute(
                update(Outbox).where(col(Outbox.id).in_(waiting)).values(enqueued_at=now)
            )
        for outbox_id, error in errors.items():
            values: dict = {}
            if error is not None:
                values["last_error"] = error
            if outbox_id in park:
                values["parked_at"] = now
                values["last_error"] = func.coalesce(error, col(Outbox.last_error), LOST)
            if values:
                session.execute(
                    update(Outbox)
                    .where(col(Outbox.id) == outbox_id, col(Outbox.processed_at).is_(None))
                    .values(**values)
                )
    for outbox_id in park:
        log.warning("outbox row %s parked after %s attempts", outbox_id, handed[outbox_id])
    skip = set(waiting) | park
    return [r for r in rows if r[0] not in skip]


def _with_context():
    """Outbox rows with their queue and what they were for: the labelled item's external id
    (training examples) or the version to re-score with."""
    return (
        select(Outbox, col(Queue.name), col(Item.external_id), col(ModelVersion.version))
        .join(Queue, col(Queue.id) == col(Outbox.queue_id))
        .outerjoin(Label, col(Label.id) == col(Outbox.label_id))
        .outerjoin(Item, col(Item.id) == col(Label.item_id))
        .outerjoin(ModelVersion, col(ModelVersion.id) == col(Outbox.model_version_id))
    )


def parked_rows(*, session: Session, limit: int = 500) -> list[dict]:
    """The parked outbox rows, newest first, with what each was for and its error."""
    stmt = (
        _with_context()
        .where(col(Outbox.parked_at).is_not(None))
        .order_by(col(Outbox.parked_at).desc(), col(Outbox.id).desc())
        .limit(limit)
    )
    return [_row(*r) for r in session.execute(stmt)]


def outbox_row(*, session: Session, outbox_id: int) -> dict:
    """One outbox row as parked_rows shows it, parked or not (the page follows a retry)."""
    found = session.execute(_with_context().where(col(Outbox.id) == outbox_id)).first()
    if found is None:
        raise NotFound(f"No outbox row {outbox_id}.")
    return _row(*found)


def parked_count(*, session: Session) -> int:
    return session.scalar(select(func.count()).where(col(Outbox.parked_at).is_not(None))) or 0


def error_line(error: str | None) -> str | None:
    """The line of a traceback that names the error: its last."""
    if not error:
        return None
    return next((line for line in reversed(error.splitlines()) if line.strip()), None)


def _row(row: Outbox, queue: str, external_id: str | None, version: str | None) -> dict:
    if row.processed_at is not None:
        state = "done"
    elif row.parked_at is not None:
        state = "parked"
    else:
        state = "retrying"
    return {
        "id": row.id,
        "kind": row.kind,
        "queue": queue,
        # What the job was for: the labelled item, or the version to re-score with.
        "external_id": external_id,
        "model_version": version,
        "state": state,
        "attempts": row.attempts,
        "created_at": row.created_at,
        "parked_at": row.parked_at,
        "error": error_line(row.last_error),
        "traceback": row.last_error,
    }


def retry_parked(*, session: Session, outbox_id: int) -> Outbox:
    """Takes a parked row out of the park with a fresh count of attempts, due for the relay
    at once; the caller commits and relays (or leaves that to the workers' relay)."""
    row = session.scalar(select(Outbox).where(col(Outbox.id) == outbox_id).with_for_update())
    if row is None:
        raise NotFound(f"No outbox row {outbox_id}.")
    if row.parked_at is None:
        raise Conflict(
            "This job is not parked: it is done or still being retried; nothing to retry."
        )
    row.parked_at = None
    row.attempts = 0
    row.enqueued_at = None
    session.flush()
    return row
