"""Failed jobs are visible: an outbox row whose job keeps failing is parked after N attempts
with the job's error, shown to admins (page and API) and retried from there."""

from datetime import timedelta

import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue as RQQueue
from sqlalchemy import select, update

from app.db import session_scope
from app.learning.feedback import STALE_AFTER
from app.learning.job_queues import FEEDBACK_QUEUE
from app.learning.outbox import relay_outbox
from app.models import Label, Outbox, TrainingExample, utcnow
from tests.conftest import item
from tests.review.test_review_pages import login

ATTEMPTS = 3


@pytest.fixture(autouse=True)
def few_attempts(app, monkeypatch):
    """LOUPE_OUTBOX_MAX_ATTEMPTS=3 for this test (the app's settings are the process's)."""
    monkeypatch.setattr(app.config["LOUPE_SETTINGS"], "outbox_max_attempts", ATTEMPTS)


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


def fix_row(engine) -> None:
    with session_scope(engine) as s:
        s.execute(update(Outbox).values(label_id=s.scalar(select(Label.id))))


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


def test_admins_see_parked_jobs_with_their_error_and_retry_them_through_the_api(
    client, make, db, engine, redis, run_jobs
):
    outbox_id, _ = park(client, make, engine, redis, run_jobs, db)
    admin = make.user("admin")
    r = client.get("/api/v1/outbox/parked", headers=admin["headers"])
    assert r.status_code == 200
    (job,) = r.json["parked"]
    assert job["id"] == outbox_id and job["kind"] == "training_example"
    assert job["queue"] == "claims" and job["attempts"] == ATTEMPTS
    assert job["error"].startswith("LookupError: outbox row")
    assert job["traceback"].startswith("Traceback") and job["parked_at"]

    fix_row(engine)
    r = client.post(f"/api/v1/outbox/{outbox_id}/retry", headers=admin["headers"])
    assert r.status_code == 202 and r.json == {"id": outbox_id, "state": "retrying"}
    assert outbox(db).parked_at is None and outbox(db).attempts == 1  # handed over again
    assert client.get("/api/v1/outbox/parked", headers=admin["headers"]).json == {"parked": []}
    run_jobs()
    assert db.count(TrainingExample) == 1
    assert db.count(Outbox, Outbox.processed_at.is_(None)) == 0
    # Only a parked row can be retried.
    r = client.post(f"/api/v1/outbox/{outbox_id}/retry", headers=admin["headers"])
    assert r.status_code == 409 and r.json["error"] == "conflict"
    r = client.post("/api/v1/outbox/999999/retry", headers=admin["headers"])
    assert r.status_code == 404 and r.json["error"] == "not_found"


def test_only_admins_see_or_retry_parked_jobs(app, client, make, db, engine, redis, run_jobs):
    outbox_id, _ = park(client, make, engine, redis, run_jobs, db)
    for role in ("reviewer", "lead", "scientist"):
        user = make.user(role, queues=["claims"])
        r = client.get("/api/v1/outbox/parked", headers=user["headers"])
        assert r.status_code == 403 and r.json["error"] == "forbidden"
        r = client.post(f"/api/v1/outbox/{outbox_id}/retry", headers=user["headers"])
        assert r.status_code == 403
        browser = app.test_client()
        token = login(browser, user)
        assert browser.get("/admin/jobs").status_code == 403
        r = browser.post(
            f"/admin/jobs/{outbox_id}/retry", headers={"HX-Request": "true", "X-CSRFToken": token}
        )
        assert r.status_code == 403
        assert "/admin/jobs" not in browser.get("/queues").get_data(as_text=True)
    assert client.get("/api/v1/outbox/parked").status_code == 401
    assert outbox(db).parked_at is not None


def test_the_failed_jobs_page_lists_parked_jobs_and_retries_one(
    app, client, make, db, engine, redis, run_jobs
):
    outbox_id, _ = park(client, make, engine, redis, run_jobs, db)
    admin = make.user("admin")
    token = login(client, admin)
    home = client.get("/queues").get_data(as_text=True)
    assert 'href="/admin/jobs"' in home and "1 parked" in home
    page = client.get("/admin/jobs").get_data(as_text=True)
    assert f'id="job-{outbox_id}"' in page and "LookupError: outbox row" in page
    assert "Training example" in page and "Retry" in page

    fix_row(engine)
    r = client.post(
        f"/admin/jobs/{outbox_id}/retry", headers={"HX-Request": "true", "X-CSRFToken": token}
    )
    assert r.status_code == 200 and "HX-Request" in r.headers["Vary"]
    row = r.get_data(as_text=True)
    assert row.startswith("<tr") and "handed to a worker" in row and 'hx-trigger="every' in row
    run_jobs()
    row = client.get(f"/admin/jobs/{outbox_id}", headers={"HX-Request": "true"}).get_data(
        as_text=True
    )
    assert "done" in row and "hx-trigger" not in row
    assert db.count(TrainingExample) == 1
    assert "No parked jobs" in client.get("/admin/jobs").get_data(as_text=True)


def test_the_openapi_document_lists_the_failed_jobs_endpoints(client):
    spec = client.get("/api/openapi.json").json
    parked = spec["paths"]["/api/v1/outbox/parked"]["get"]
    assert {"200", "401", "403"} <= set(parked["responses"])
    ref = parked["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert "parked" in spec["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
    retry = spec["paths"]["/api/v1/outbox/{outbox_id}/retry"]["post"]
    assert {"202", "401", "403", "404", "409"} <= set(retry["responses"])
