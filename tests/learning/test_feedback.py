"""Outbox to training example: exactly once, and nothing lost while Redis is away."""

from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select

from app.db import session_scope
from app.learning.feedback import make_training_example
from app.learning.outbox import relay_outbox
from app.models import Outbox, TrainingExample
from tests.conftest import item


def _decide_all(client, producer, reviewer, n):
    client.post(
        "/api/v1/queues/claims/items",
        headers=producer["headers"],
        json={"items": [item(f"f-{i}", "fraud", 0.5) for i in range(n)]},
    )
    for _ in range(n):
        claim = client.post("/api/v1/queues/claims/claims", headers=reviewer["headers"]).json[
            "claim"
        ]
        client.post(
            f"/api/v1/claims/{claim['token']}/decision",
            json={"label": "legit"},
            headers=reviewer["headers"],
        )


def test_decisions_made_while_redis_is_away_are_relayed_later(
    app, client, make, db, engine, redis, run_jobs
):
    make.queue(audit_rate=0, retrain_after=0)
    producer = make.user("scientist", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    # Point the app at a Redis that is not there: decisions must still be stored.
    app.extensions["loupe.redis"] = Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    _decide_all(client, producer, reviewer, 5)
    assert db.count(Outbox, Outbox.enqueued_at.is_(None)) == 5
    assert relay_outbox(engine, app.extensions["loupe.redis"]) == 0
    assert db.count(Outbox, Outbox.enqueued_at.is_(None)) == 5
    # Redis is back: the relay hands everything over and the worker makes the examples.
    assert relay_outbox(engine, redis) == 5
    run_jobs()
    assert db.count(TrainingExample) == 5
    assert db.count(Outbox, Outbox.processed_at.is_(None)) == 0


def test_training_example_is_written_once_however_often_the_job_runs(
    client, make, db, engine, run_jobs, redis
):
    make.queue(audit_rate=0, retrain_after=0)
    producer = make.user("scientist", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    _decide_all(client, producer, reviewer, 3)
    run_jobs()
    ids = [r[0] for r in db.all(select(Outbox.id))]
    for outbox_id in ids:  # a job redelivered after a crash runs again
        with session_scope(engine) as s:
            assert make_training_example(session=s, outbox_id=outbox_id) is None
    assert db.count(TrainingExample) == 3
    # Even a row whose processed mark was lost does not make a second example.
    with session_scope(engine) as s:
        s.execute(Outbox.__table__.update().values(processed_at=None))
    with session_scope(engine) as s:
        assert make_training_example(session=s, outbox_id=ids[0]) is None
    assert db.count(TrainingExample) == 3


def test_auto_accepted_labels_are_not_fed_back(client, make, db, run_jobs):
    make.queue(audit_rate=0, retrain_after=0)
    producer = make.user("scientist", queues=["claims"])
    client.post(
        "/api/v1/queues/claims/items",
        headers=producer["headers"],
        json={"items": [item("auto", "fraud", 0.99)]},
    )
    run_jobs()
    assert db.count(Outbox) == 0 and db.count(TrainingExample) == 0


def test_jobs_lost_by_redis_are_sent_again_after_the_stale_window(
    client, make, db, engine, redis, run_jobs
):
    from datetime import timedelta

    from app.learning.feedback import STALE_AFTER
    from app.models import utcnow

    make.queue(audit_rate=0, retrain_after=0)
    producer = make.user("scientist", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    _decide_all(client, producer, reviewer, 4)
    assert db.count(Outbox, Outbox.enqueued_at.is_(None)) == 0  # handed over at once
    redis.flushdb()  # Redis restarted without persistence: the jobs are gone
    assert relay_outbox(engine, redis) == 0  # too early to call them lost
    later = utcnow() + STALE_AFTER + timedelta(seconds=1)
    assert relay_outbox(engine, redis, now=later) == 4
    run_jobs()
    assert db.count(TrainingExample) == 4
    assert relay_outbox(engine, redis, now=later + STALE_AFTER * 2) == 0


def test_repeated_retrain_triggers_collapse_into_one_job(make, redis, engine):
    from rq import Queue as RQQueue

    from app.learning.job_queues import TRAINING_QUEUE
    from app.learning.retraining import enqueue_retrain

    queue_id = make.queue()
    first = enqueue_retrain(redis, queue_id)
    second = enqueue_retrain(redis, queue_id)
    assert first == second
    assert RQQueue(TRAINING_QUEUE, connection=redis).count == 1


def test_a_persons_request_during_a_run_gets_one_follow_up_run(make, redis, engine):
    from rq import Queue as RQQueue
    from rq.job import Job, JobStatus

    from app.learning.job_queues import TRAINING_QUEUE
    from app.learning.retraining import enqueue_retrain, retrain_lock_key

    queue_id = make.queue()
    running = enqueue_retrain(redis, queue_id)
    job = Job.fetch(running, connection=redis)
    job.set_status(JobStatus.STARTED)  # a worker took it and holds the queue's lock
    redis.set(retrain_lock_key(queue_id), "worker-1")
    # Labels arriving meanwhile collapse into the running job; a person gets a run after it.
    assert enqueue_retrain(redis, queue_id, reason="enough new labels") == running
    follow = enqueue_retrain(redis, queue_id, reason="requested by ana", follow_up=True)
    assert follow == f"{running}-next"
    assert enqueue_retrain(redis, queue_id, reason="requested by bo", follow_up=True) == follow
    rq = RQQueue(TRAINING_QUEUE, connection=redis)
    assert rq.job_ids == [running, follow]
    assert Job.fetch(follow, connection=redis).kwargs == {"reason": "requested by ana"}
