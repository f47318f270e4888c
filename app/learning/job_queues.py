"""Loupe's RQ queues, what a job connects to, and enqueueing a long job only once.

The job functions live with the code they run (app.learning.outbox, .retraining,
.rescoring) and are enqueued as functions, not by name: the routes that enqueue them and the
worker that runs them import the same modules, and nothing that enqueues a job imports
workers/. Every job takes ids, opens its own session and is idempotent (running it twice
has the effect of running it once).
"""

from __future__ import annotations

from redis import Redis
from rq import Queue as RQQueue
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job
from sqlalchemy.engine import Engine

from app import resolve_redis_url
from app.db import get_engine
from app.settings import current_settings

FEEDBACK_QUEUE = "loupe-feedback"
TRAINING_QUEUE = "loupe-training"
ALL_QUEUES = (FEEDBACK_QUEUE, TRAINING_QUEUE)
# Retraining and re-scoring: how long RQ lets one run, and a second run waits for the first.
LONG_JOB_TIMEOUT = 60 * 60


def job_engine() -> Engine:
    """The database engine of this process (one per URL, re-created after the fork)."""
    return get_engine(current_settings().resolved_database_url())


def job_redis() -> Redis:
    return Redis.from_url(
        resolve_redis_url(current_settings()), socket_timeout=10, socket_connect_timeout=5
    )


def enqueue_once(conn: Redis, job_id: str, func, *, args, kwargs=None, is_live) -> Job | None:
    """Enqueues a long job on the training queue under `job_id` unless a live one holds that
    id; finished, failed or dead ones are replaced. Returns the live job it collapsed into,
    or None when it enqueued a new one."""
    rq = RQQueue(TRAINING_QUEUE, connection=conn)
    for _ in range(3):
        try:
            rq.enqueue_call(
                func,
                args=args,
                kwargs=kwargs or {},
                job_id=job_id,
                timeout=LONG_JOB_TIMEOUT,
                result_ttl=3600,
                failure_ttl=7 * 24 * 3600,
                unique=True,
            )
            return None
        except DuplicateJobError:
            try:
                job = Job.fetch(job_id, connection=conn)
            except NoSuchJobError:
                continue
            if is_live(job):
                return job
            job.delete()
    return None
