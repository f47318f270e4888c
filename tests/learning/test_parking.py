"""Failed jobs are visible: an outbox row whose job keeps failing is parked after N attempts
with the job's error."""

from datetime import timedelta

import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue as RQQueue
from sqlalchemy import select, update

from app.db import session_scope
from app.learning.feedback import STALE_AFTER
from app.models import Outbox, TrainingExample, utcnow
from app.tasks import FEEDBACK_QUEUE, relay_outbox
from tests.conftest import item

ATTEMPTS = 3


@pytest.fixture(autouse=True)
def few_attempts(monkeypatch):
    monkeypatch.setenv("LOUPE_OUTBOX_MAX_ATTEMPTS", str(ATTEMPTS))


def decide_one(client, make):
    """One human label: its outbox row is handed to RQ at once (attempt 1)."""
    make.queue(audit_rate=0, retrain_after=0)
    producer = make.user("scientist", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    client.post(
        "/api/v1/queues/claims/items", headers=producer["headers"], json={"items": [item("f-1")]}
    )
    token = client.post("/api/v1/queues/claims/claims", headers=reviewer["headers"]).json["claim"][
        "token"
    ]
    r = client.post(
        f"/api/v1/claims/{token}/decision", json={"label": "legit"}, headers=reviewer["headers"]
    )
    assert r.status_code == 200


def break_row(engine) -> int:
    """The row loses its label: make_training_example fails on it every time."""
    with session_scope(engine) as s:
        s.execute(update(Outbox).values(label_id=None))
        return s.scalar(select(Outbox.id))


def outbox(db):
    return db.all(select(Outbox.attempts, Outbox.parked_at, Outbox.last_error))[0]


def park(client, make, engine, redis, run_jobs, db):
    """Runs the relay and a real worker until the broken row is parked; returns its id."""
    decide_one(client, make)
    outbox_id = break_row(engine)
    now = utcnow()
    for attempt in range(1, ATTEMPTS + 1):
        run_jobs()  # the job fails
        assert outbox(db).attempts == attempt and outbox(db).parked_at is None
        now += STALE_AFTER + timedelta(seconds=1)
        sent = relay_outbox(engine, redis, now=now)
        assert sent == (1 if attempt < ATTEMPTS else 0)
        assert "outbox row" in outbox(db).last_error
    return outbox_id, now


def test_a_job_that_always_fails_is_parked_after_n_attempts_and_not_sent_again(
    client, make, db, engine, redis, run_jobs
):
    outbox_id, now = park(client, make, engine, redis, run_jobs, db)
    row = outbox(db)
    assert row.attempts == ATTEMPTS and row.parked_at is not None
    # The job's own exception, traceback and all.
    assert row.last_error.startswith("Traceback")
    assert row.last_error.splitlines()[-1].startswith("LookupError: outbox row")
    for later in (now + STALE_AFTER * 2, now + timedelta(days=1)):
        assert relay_outbox(engine, redis, now=later) == 0
    assert RQQueue(FEEDBACK_QUEUE, connection=redis).count == 0
    run_jobs()
    assert outbox(db).attempts == ATTEMPTS
    assert db.count(TrainingExample) == 0
    assert 'loupe_outbox_parked{queue="claims"} 1.0' in client.get("/metrics").get_data(True)


def test_a_job_still_waiting_for_a_worker_is_not_sent_again_nor_counted(
    client, make, db, engine, redis, run_jobs
):
    decide_one(client, make)  # handed over; no worker runs it for a long while
    now = utcnow()
    for _ in range(ATTEMPTS + 2):
        now += STALE_AFTER + timedelta(seconds=1)
        assert relay_outbox(engine, redis, now=now) == 0
    assert RQQueue(FEEDBACK_QUEUE, connection=redis).count == 1
    assert outbox(db).attempts == 1 and outbox(db).parked_at is None
    run_jobs()
    assert db.count(TrainingExample) == 1


def test_a_job_lost_every_time_is_parked_saying_so(client, make, db, engine, redis):
    decide_one(client, make)
    now = utcnow()
    for _ in range(ATTEMPTS):
        redis.flushdb()  # Redis restarted without persistence: the job is gone
        now += STALE_AFTER + timedelta(seconds=1)
        relay_outbox(engine, redis, now=now)
    row = outbox(db)
    assert row.parked_at is not None and row.attempts == ATTEMPTS
    assert "lost" in row.last_error


def test_a_hand_over_redis_refused_is_not_counted(app, client, make, db, engine, redis):
    app.extensions["loupe.redis"] = Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    decide_one(client, make)  # stored; the hand-over fails
    assert outbox(db).attempts == 0
    assert relay_outbox(engine, redis) == 1
    assert outbox(db).attempts == 1
