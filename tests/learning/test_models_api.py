"""The model registry over HTTP and with a real worker: runs, cards, snapshots, promotion,
roll-back, re-scoring, failed runs, schedules."""

import json

from sqlalchemy import select

from app.db import session_scope
from app.demo.claims import generate_claims
from app.learning.training import train_model_version
from app.models import Item, ModelVersion, Prediction, Queue, TrainingRun
from tests.conftest import item, wait_for
from tests.learning.test_training import _labelled
from tests.review.test_review_pages import login


def _two_versions(engine, queue_id):
    """v1 on 300 labels; v2, not promoted, trained on the currency alone."""
    with session_scope(engine) as s:
        v1 = train_model_version(db=s, queue_id=queue_id).version.version
    _labelled(engine, 100, seed=2)
    with session_scope(engine) as s:
        queue = s.get(Queue, queue_id)
        queue.policy = {**queue.policy, "features": [{"name": "currency"}]}
        v2 = train_model_version(db=s, queue_id=queue.id).version.version
    return v1, v2


def _latest(db, external_id):
    return db.scalar(
        select(Prediction)
        .join(Item, Item.id == Prediction.item_id)
        .where(Item.external_id == external_id)
        .order_by(Prediction.id.desc())
        .limit(1)
    )


def test_labels_retrain_with_a_worker_then_card_snapshot_and_rescoring(
    client, make, engine, db, worker_process
):
    queue_id = make.queue(audit_rate=0, retrain_after=0)
    lead = make.user("lead", queues=["claims"])
    make.user("reviewer", queues=["claims"])
    _labelled(engine, 300)
    worker_process()

    r = client.post("/api/v1/queues/claims/models/retrain", headers=lead["headers"])
    assert r.status_code == 202
    listing = wait_for(
        lambda: (
            lambda j: (
                j if j["versions"] and j["runs"] and j["runs"][0]["status"] != "running" else None
            )
        )(client.get("/api/v1/queues/claims/models", headers=lead["headers"]).json),
        timeout=120,  # it fits twice (split, then every label) on a machine shared by tests
        what="a trained version",
    )
    v1 = listing["versions"][0]
    assert v1["active"] and v1["status"] == "active" and len(v1["snapshot"]) == 64
    assert listing["runs"][0] == {
        **listing["runs"][0],
        "status": "trained",
        "version": v1["version"],
        "trigger": f"requested by {lead['name']}",
    }
    card = client.get(f"/api/v1/queues/claims/models/{v1['version']}", headers=lead["headers"]).json
    c, m = card["card"], card["metrics"]
    assert c["data"]["snapshot"] == v1["snapshot"] and c["seed"] == 0
    assert c["libraries"]["scikit-learn"] and c["libraries"]["mapie"]
    assert c["conformal"]["coverage"] == 0.95 and 0 < c["conformal"]["qhat"] <= 1
    assert c["calibration"]["method"] == "temperature"
    assert {"precision", "recall", "f1", "support"} <= set(m["per_class"]["legit"])
    assert "calibration_error" in m and "coverage" in m and m["n_eval"] == 60

    # The snapshot names exactly the rows the run read, and each row's part.
    snap = client.get(
        f"/api/v1/queues/claims/models/{v1['version']}/snapshot", headers=lead["headers"]
    )
    rows = [json.loads(line) for line in snap.data.decode().splitlines()]
    assert len(rows) == 300 and len({r["example_id"] for r in rows}) == 300
    parts = [r["part"] for r in rows]
    assert parts.count("evaluation") == 60 and parts.count("conformal") == 60
    assert parts == sorted(parts, key=["train", "conformal", "evaluation"].index)

    _labelled(engine, 50, seed=4)  # labels for a second version, trained below
    # Waiting items: scored by v1, one of them held by a reviewer, one with the producer's answer.
    fresh = [
        {"external_id": f"n{i}", "payload": c["payload"]}
        for i, c in enumerate(generate_claims(30, seed=8))
    ]
    client.post(
        "/api/v1/queues/claims/items",
        json={"items": fresh + [item("prod-1")]},
        headers=lead["headers"],
    )
    held = client.post("/api/v1/queues/claims/claims", headers=lead["headers"]).json["claim"]
    held_ext = held["item"]["external_id"]
    waiting = [
        ext
        for (ext,) in db.all(select(Item.external_id).where(Item.status == "pending"))
        if ext != "prod-1"
    ]
    assert waiting and all(_latest(db, e).model_version == v1["version"] for e in waiting)

    with session_scope(engine) as s:  # a second version, kept as a candidate
        queue = s.get(Queue, queue_id)
        queue.policy = {**queue.policy, "features": [{"name": "currency"}]}
        v2 = train_model_version(db=s, queue_id=queue.id).version
        assert not v2.active
        v2 = v2.version
    r = client.post(f"/api/v1/queues/claims/models/{v2}/promote", headers=lead["headers"])
    assert r.status_code == 200 and r.json["active"] and r.json["status"] == "active"
    wait_for(
        lambda: all(_latest(db, e).model_version == v2 for e in waiting),
        what="waiting items re-scored by the promoted version",
    )
    detail = _latest(db, waiting[0]).detail
    assert detail["coverage"] == 0.95 and detail["set_size"] >= 0
    assert _latest(db, held_ext).model_version == v1["version"]  # the reviewer's view stays
    assert _latest(db, "prod-1").source == "producer"

    r = client.post("/api/v1/queues/claims/models/rollback", headers=lead["headers"])
    assert r.status_code == 200 and r.json["version"] == v1["version"]
    wait_for(
        lambda: all(_latest(db, e).model_version == v1["version"] for e in waiting),
        what="re-scored by the rolled-back version",
    )
    statuses = {
        v["version"]: v["status"]
        for v in client.get("/api/v1/queues/claims/models", headers=lead["headers"]).json[
            "versions"
        ]
    }
    assert statuses == {v1["version"]: "active", v2: "retired"}


def test_a_failed_run_leaves_the_active_model_and_says_why(
    client, make, engine, db, worker_process
):
    queue_id = make.queue(audit_rate=0, retrain_after=0)
    lead = make.user("lead", queues=["claims"])
    make.user("reviewer", queues=["claims"])
    _labelled(engine, 100)
    with session_scope(engine) as s:
        v1 = train_model_version(db=s, queue_id=queue_id).version.version
    _labelled(engine, 30, seed=5)
    with session_scope(engine) as s:
        # A text feature no payload has: no vocabulary, so the fit itself fails.
        queue = s.get(Queue, queue_id)
        queue.policy = {**queue.policy, "features": [{"name": "missing", "kind": "text"}]}
    worker_process()
    client.post("/api/v1/queues/claims/models/retrain", headers=lead["headers"])
    run = wait_for(
        lambda: (lambda runs: runs[0] if runs and runs[0]["status"] == "failed" else None)(
            client.get("/api/v1/queues/claims/models", headers=lead["headers"]).json["runs"]
        ),
        what="a failed run",
    )
    assert "could not be fitted" in run["message"] and run["finished_at"]
    versions = client.get("/api/v1/queues/claims/models", headers=lead["headers"]).json["versions"]
    assert [(v["version"], v["active"]) for v in versions] == [(v1, True)]
    page = client.get("/queues/claims/models")
    assert page.status_code in (302, 401)  # pages need a login

    # Fixed, but narrowed to one uninformative field: the worker trains a worse model,
    # which stays a candidate while v1 keeps answering.
    r = client.patch(
        "/api/v1/queues/claims/policy",
        json={"features": [{"name": "currency"}]},
        headers=lead["headers"],
    )
    # The policy change itself starts the run (no manual retrain or promotion).
    assert r.status_code == 200 and r.json["retraining"]["fields"] == ["features"]
    run = wait_for(
        lambda: (lambda runs: runs[0] if runs and runs[0]["status"] == "trained" else None)(
            client.get("/api/v1/queues/claims/models", headers=lead["headers"]).json["runs"]
        ),
        what="a trained run",
    )
    assert run["message"].endswith("worse with confidence, kept as a candidate")
    versions = client.get("/api/v1/queues/claims/models", headers=lead["headers"]).json["versions"]
    assert [(v["status"], v["active"]) for v in versions] == [
        ("candidate", False),
        ("active", True),
    ]
    assert versions[1]["version"] == v1


def test_promote_and_rollback_refusals(client, make, engine, db):
    queue_id = make.queue(audit_rate=0, retrain_after=0)
    lead = make.user("lead", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    outsider = make.user("lead")
    r = client.post("/api/v1/queues/claims/models/rollback", headers=lead["headers"])
    assert r.status_code == 409
    _labelled(engine, 300)
    v1, v2 = _two_versions(engine, queue_id)
    assert (
        client.post(
            f"/api/v1/queues/claims/models/{v2}/promote", headers=reviewer["headers"]
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/api/v1/queues/claims/models/{v2}/promote", headers=outsider["headers"]
        ).status_code
        == 404
    )
    assert (
        client.post(
            f"/api/v1/queues/claims/models/{v1}/promote", headers=lead["headers"]
        ).status_code
        == 409
    )
    for bad in ("nope", "<script>x</script>", "v1'; DROP TABLE model_version;--", "ü" * 300):
        r = client.post(f"/api/v1/queues/claims/models/{bad}/promote", headers=lead["headers"])
        assert r.status_code == 404 and r.json["error"] == "not_found"
    assert (
        client.get(f"/api/v1/queues/claims/models/{v2}", headers=outsider["headers"]).status_code
        == 404
    )
    assert db.scalar(select(ModelVersion.version).where(ModelVersion.active)) == v1


def test_model_pages_for_a_lead(client, make, engine):
    queue_id = make.queue(audit_rate=0, retrain_after=0)
    lead = make.user("lead", queues=["claims"])
    make.user("reviewer", queues=["claims"])
    _labelled(engine, 300)
    v1, v2 = _two_versions(engine, queue_id)
    csrf = login(client, lead)
    html = client.get("/queues/claims/models").data.decode()
    assert v1 in html and v2 in html and "Make active" in html and "worse with confidence" in html
    assert "Retrains only when asked" in html  # retrain_after=0
    assert "Roll back to" not in html  # nothing was active before v1
    card = client.get(f"/queues/claims/models/{v1}").data.decode()
    for part in ("Intended use", "Confusion matrix", "Limitations", "How reviewers", "temperature"):
        assert part in card, part
    refused = client.post(f"/queues/claims/models/{v2}/promote")  # no CSRF token
    assert refused.status_code == 400
    r = client.post(
        f"/queues/claims/models/{v2}/promote", data={"csrf_token": csrf}, follow_redirects=True
    )
    assert f"{v2} is now the active model" in r.data.decode()
    assert client.get("/queues/claims/models/nope").status_code == 404


def test_schedule_and_abandoned_runs_in_maintenance(make, engine, redis, db):
    from rq import Queue as RQQueue

    from app.learning.job_queues import TRAINING_QUEUE
    from app.learning.registry import start_run
    from app.learning.retraining import retrain_lock_key
    from workers.maintenance import run_maintenance

    queue_id = make.queue(audit_rate=0, retrain_after=0, retrain_every_hours=1)
    make.user("reviewer", queues=["claims"])
    _labelled(engine, 40)
    assert run_maintenance()["scheduled"] == 1
    assert RQQueue(TRAINING_QUEUE, connection=redis).job_ids == [f"retrain-q{queue_id}"]
    with session_scope(engine) as s:
        start_run(session=s, queue_id=queue_id, trigger="schedule")
    redis.flushdb()
    redis.set(retrain_lock_key(queue_id), "a live worker")
    # A run began less than an hour ago, and it holds its lock: nothing to do.
    done = run_maintenance()
    assert done["scheduled"] == 0 and done["abandoned_runs"] == 0
    assert db.scalar(select(TrainingRun.status)) == "running"

    redis.delete(retrain_lock_key(queue_id))  # its worker died; the lock lapsed
    assert run_maintenance()["abandoned_runs"] == 1
    run = db.scalar(select(TrainingRun))
    assert run.status == "failed" and "worker stopped" in run.message and run.finished_at
    assert run_maintenance()["abandoned_runs"] == 0


def test_policy_changes_are_validated_whole_and_merged(client, make, db):
    make.queue(audit_rate=0.1)
    scientist = make.user("scientist", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    url = "/api/v1/queues/claims/policy"
    ok = {"features": [{"name": "amount"}, {"name": "note", "kind": "text"}], "coverage": 0.9}
    assert client.patch(url, json=ok, headers=reviewer["headers"]).status_code == 403
    for bad in (
        {"coverage": "high"},
        {"features": [{"name": "amount", "kind": "image"}]},
        {"rules": [{"name": "r", "field": "amount", "op": ">", "value": 1, "label": "nope"}]},
        {"unknown": 1},
        {},
        [],
    ):
        r = client.patch(url, json=bad, headers=scientist["headers"])
        assert r.status_code == 422 and r.json["details"], bad
    assert (
        client.get("/api/v1/queues/claims", headers=scientist["headers"]).json["policy"]["coverage"]
        == 0.95
    )
    r = client.patch(url, json=ok, headers=scientist["headers"])
    assert r.status_code == 200
    policy = client.get("/api/v1/queues/claims", headers=scientist["headers"]).json["policy"]
    assert policy["coverage"] == 0.9 and policy["audit_rate"] == 0.1  # merged, not replaced
    assert policy["features"][1] == {"name": "note", "kind": "text"}


def test_rescoring_promised_by_a_promotion_survives_redis_being_away(
    app, client, make, engine, db, redis, run_jobs
):
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from app.learning.outbox import relay_outbox
    from app.models import Outbox

    queue_id = make.queue(audit_rate=0, retrain_after=0)
    lead = make.user("lead", queues=["claims"])
    make.user("reviewer", queues=["claims"])
    _labelled(engine, 300)
    v1, v2 = _two_versions(engine, queue_id)
    fresh = [
        {"external_id": f"w{i}", "payload": c["payload"]}
        for i, c in enumerate(generate_claims(12, seed=5))
    ]
    client.post("/api/v1/queues/claims/items", json={"items": fresh}, headers=lead["headers"])
    redis.flushdb()
    app.extensions["loupe.redis"] = Redis(
        port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    r = client.post(f"/api/v1/queues/claims/models/{v2}/promote", headers=lead["headers"])
    assert r.status_code == 200 and r.json["active"]  # the promotion itself stands
    promised = db.scalar(
        select(Outbox)
        .where(Outbox.kind == "rescore", Outbox.model_version_id.is_not(None))
        .order_by(Outbox.id.desc())
    )
    assert promised.processed_at is None and promised.enqueued_at is None
    assert _latest(db, "w0").model_version == v1

    # Redis is back: the relay hands the promise over and a worker keeps it.
    assert relay_outbox(engine, redis) >= 1
    run_jobs()
    assert all(_latest(db, f"w{i}").model_version == v2 for i in range(12))
    assert db.scalar(select(Outbox.processed_at).where(Outbox.id == promised.id)) is not None
