"""What a person asks of a queue's models, from the Models page or the API: promote a
version, roll back to the one before, or start a retraining run."""

from __future__ import annotations

import logging

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.errors import ServiceUnavailable
from app.learning.outbox import relay_outbox
from app.learning.registry import promote, rollback
from app.learning.retraining import enqueue_retrain
from app.models import ModelVersion, Queue, User, id_of

log = logging.getLogger(__name__)
# Policy fields a model is trained with: changing one retrains (through the same gate).
RETRAINING_FIELDS = ("coverage", "target_precision", "confidence", "features")


def promote_and_rescore(
    *, session: Session, engine: Engine, redis: Redis, queue: Queue, version: str, user: User
) -> ModelVersion:
    """Makes `version` the active model (also how a person goes back to an older one), then
    hands the re-scoring of the waiting items to the workers.

    Commits `session` (a writing one): the re-scoring is promised by an outbox row in the
    same transaction, and handed over only once that is stored; if Redis is away, the relay
    hands it over later.
    """
    row = promote(session=session, queue=queue, version=version, user=user)
    session.commit()
    relay_outbox(engine, redis)
    return row


def roll_back_and_rescore(
    *, session: Session, engine: Engine, redis: Redis, queue: Queue, user: User
) -> ModelVersion:
    """Re-activates the version that was active before the current one, then hands the
    re-scoring of the waiting items to the workers; commits as promote_and_rescore does."""
    row = rollback(session=session, queue=queue, user=user)
    session.commit()
    relay_outbox(engine, redis)
    return row


def request_retrain(*, redis: Redis, queue: Queue, user: User) -> str:
    """Starts a retraining run of the queue for a person and returns its RQ job id; a run
    already waiting is reused, and one already under way gets a fresh run queued behind it.

    Raises ServiceUnavailable when Redis does not answer.
    """
    try:
        return enqueue_retrain(
            redis, id_of(queue), reason=f"requested by {user.name}", follow_up=True
        )
    except RedisError:
        raise ServiceUnavailable(
            "The job queue (Redis) is not answering; retraining could not be started. "
            "Try again in a moment."
        ) from None


def retrain_for_policy(*, redis: Redis, queue: Queue, user: User, before: dict, after: dict):
    """Starts a retraining run when a lead changed a policy field the model is trained with
    (RETRAINING_FIELDS); its version is promoted, or not, by the usual gate. Returns
    {"fields", "job_id"} (job_id None when Redis is away: the next run applies it), or None
    when no such field changed."""
    changed = [f for f in RETRAINING_FIELDS if before.get(f) != after.get(f)]
    if not changed:
        return None
    try:
        job_id = enqueue_retrain(
            redis,
            id_of(queue),
            reason=f"policy changed by {user.name}: {', '.join(changed)}",
            follow_up=True,
        )
    except RedisError:
        log.warning("queue %s: policy changed but Redis is away; no retraining started", queue.name)
        job_id = None
    return {"fields": changed, "job_id": job_id}
