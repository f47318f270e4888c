"""Asking for a retraining run, from the API and from the Models page: one domain call
(app.learning.activation.request_retrain), the same answer when Redis is away."""

from redis import Redis
from rq.job import Job

from tests.review.test_review_pages import login


def _redis_away(app):
    # A real client to a port nothing listens on: the failure the job queue can really have.
    app.extensions["loupe.redis"] = Redis.from_url(
        "redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2
    )


def test_a_retrain_request_is_one_job_named_after_the_queue(client, make, redis):
    queue_id = make.queue()
    lead = make.user("lead", queues=["claims"])
    r = client.post("/api/v1/queues/claims/models/retrain", headers=lead["headers"])
    assert r.status_code == 202 and r.json == {"job_id": f"retrain-q{queue_id}"}
    job = Job.fetch(r.json["job_id"], connection=redis)
    assert job.kwargs == {"reason": f"requested by {lead['name']}"}
    # Asked again while it waits: the same job, nothing new queued.
    again = client.post("/api/v1/queues/claims/models/retrain", headers=lead["headers"])
    assert again.json == r.json


def test_without_redis_the_api_answers_503_and_the_page_says_so(app, client, make):
    make.queue()
    lead = make.user("lead", queues=["claims"])
    _redis_away(app)
    r = client.post("/api/v1/queues/claims/models/retrain", headers=lead["headers"])
    assert r.status_code == 503
    assert r.json == {
        "error": "unavailable",
        "message": "The job queue (Redis) is not answering; retraining could not be started. "
        "Try again in a moment.",
        "details": [],
    }
    csrf = login(client, lead)
    page = client.post(
        "/queues/claims/models/retrain", data={"csrf_token": csrf}, follow_redirects=True
    )
    assert page.status_code == 200
    assert "The job queue is not answering; retraining could not be started." in page.text
