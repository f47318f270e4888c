"""Retraining: snapshots, versions, promotion, refusal, safe loading."""

import pytest
from sqlalchemy import select

from app.db import new_session, session_scope
from app.demo.claims import generate_claims
from app.ingest.service import ingest_items, parse_rows
from app.learning import artifacts
from app.learning.feedback import make_training_example
from app.learning.fitting import TrainingFailed
from app.learning.snapshot import take_snapshot
from app.learning.training import train_model_version
from app.models import ModelVersion, Outbox, Queue, Review, User
from app.review.service import claim_next, decide


def _labelled(engine, n, seed=1):
    """n human-labelled claims through the ordinary claim/decide path."""
    with session_scope(engine) as s:
        queue = s.scalar(select(Queue))
        user = s.scalar(select(User).where(User.role == "reviewer"))
        claims = generate_claims(n, seed=seed)
        truth = {c["external_id"]: c["label"] for c in claims}
        ingest_items(
            session=s,
            queue=queue,
            items=parse_rows(
                {"external_id": f"s{seed}-{c['external_id']}", "payload": c["payload"]}
                for c in claims
            ),
        )
        from app.models import Item

        while (claim := claim_next(session=s, queue=queue, user=user)) is not None:
            ext = s.get(Item, claim.item_id).external_id.split("-", 1)[1]
            decide(session=s, token=claim.token, user=user, label=truth[ext])
        for oid in s.scalars(select(Outbox.id)):
            make_training_example(session=s, outbox_id=oid)
        return queue.id


def test_retrain_versions_snapshot_and_promotion(make, engine, db):
    make.queue(audit_rate=0, retrain_after=0, auto_accept_threshold=1, min_margin=1)
    make.user("reviewer", queues=["claims"])
    queue_id = _labelled(engine, 200)
    with session_scope(engine) as s:
        queue = s.get(Queue, queue_id)
        v1 = train_model_version(db=s, queue_id=queue.id, seed=0).version
        assert v1.active and v1.metrics["promoted"]
        assert 0 < v1.metrics["macro_f1"] <= 1
        assert v1.snapshot == take_snapshot(session=s, queue_id=queue_id).content_hash
        # Nothing new: no second version for the same snapshot.
        assert train_model_version(db=s, queue_id=queue.id, seed=0).version is None
    _labelled(engine, 100, seed=2)
    with session_scope(engine) as s:
        v2 = train_model_version(db=s, queue_id=queue_id, seed=0).version
        assert v2.snapshot != v1.snapshot and v2.n_examples == 300
        # Graded against v1 on the newest human labels, which v1 never trained on.
        assert v2.metrics["active_version"] == "claims-v1"
        assert "active_macro_f1" in v2.metrics and v2.metrics["compared_on"] >= 10
        assert v2.metrics["promotion_reason"].endswith(", promoted") == v2.active
        actives = s.scalars(select(ModelVersion.version).where(ModelVersion.active)).all()
        assert len(actives) == 1


def test_same_snapshot_and_seed_give_the_same_metrics(make, engine):
    make.queue(audit_rate=0, retrain_after=0, auto_accept_threshold=1, min_margin=1)
    make.user("reviewer", queues=["claims"])
    queue_id = _labelled(engine, 120)
    metrics = []
    for _ in range(2):
        # Each run is rolled back, so the second one trains on the same snapshot again.
        with new_session(engine, write=True) as s:
            v = train_model_version(db=s, queue_id=queue_id, seed=3).version
            metrics.append({k: v.metrics[k] for k in ("accuracy", "macro_f1", "n_eval")})
            metrics[-1]["snapshot"] = v.snapshot
            s.rollback()
    assert metrics[0] == metrics[1]


def test_too_few_or_single_label_examples_fail_without_a_version(make, engine, db):
    make.queue(audit_rate=0, retrain_after=0, auto_accept_threshold=1, min_margin=1)
    make.user("reviewer", queues=["claims"])
    queue_id = _labelled(engine, 5)
    with pytest.raises(TrainingFailed, match="at least"), session_scope(engine) as s:
        train_model_version(db=s, queue_id=queue_id)
    assert db.count(ModelVersion) == 0


def test_training_a_queue_that_does_not_exist_fails_and_stores_nothing(make, engine, db):
    make.queue()
    missing = db.scalar(select(Queue.id)) + 1000
    # Given an engine (the job, the benchmark) or a session (the demo, tests): the same error,
    # not an AttributeError from deep inside the run.
    with pytest.raises(TrainingFailed, match=f"no queue with id {missing}"):
        train_model_version(db=engine, queue_id=missing)
    with pytest.raises(TrainingFailed, match=f"no queue with id {missing}"):
        with session_scope(engine) as s:
            train_model_version(db=s, queue_id=missing)
    assert db.count(ModelVersion) == 0


def test_tampered_model_file_is_refused():
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0]], ["a", "b"])
    data, sha = artifacts.save(model)
    assert artifacts.load(data, sha).predict([[1.0]])[0] == "b"
    with pytest.raises(artifacts.ArtifactError, match="checksum"):
        artifacts.load(data + b"x", sha)


def test_a_model_is_not_stored_when_its_labels_were_reopened_while_it_trained(make, engine, db):
    from app.learning.fitting import fit
    from app.learning.registry import store
    from app.review import actions

    make.queue(audit_rate=0, retrain_after=0, auto_accept_threshold=1, min_margin=1)
    make.user("reviewer", queues=["claims"])
    queue_id = _labelled(engine, 60)
    with session_scope(engine) as s:
        snap = take_snapshot(session=s, queue_id=queue_id)
    with session_scope(engine) as s:
        fitted = fit(snap, queue=s.get(Queue, queue_id), seed=0)
    with session_scope(engine) as s:  # a reviewer reopens one of the labels meanwhile
        user = s.scalar(select(User).where(User.role == "reviewer"))
        review = s.scalar(select(Review).where(Review.user_id == user.id))
        actions.reopen(session=s, review_id=review.id, user=user)
    with pytest.raises(TrainingFailed, match="reopened"), session_scope(engine) as s:
        store(session=s, queue=s.get(Queue, queue_id), fitted=fitted)
    assert db.count(ModelVersion) == 0


def test_retrain_request_says_503_when_redis_is_away(app, client, make):
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    make.queue()
    lead = make.user("lead", queues=["claims"])
    app.extensions["loupe.redis"] = Redis(
        port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    r = client.post("/api/v1/queues/claims/models/retrain", headers=lead["headers"])
    assert r.status_code == 503 and r.json["error"] == "unavailable"


def test_failed_training_backs_off_instead_of_retrying_on_every_label(
    make, engine, redis, run_jobs
):
    from app.learning.retraining import retrain, retrain_backoff_key

    queue_id = make.queue(audit_rate=0, retrain_after=1)
    make.user("reviewer", queues=["claims"])
    _labelled(engine, 3)  # too few: training fails
    with pytest.raises(TrainingFailed):
        retrain(queue_id)
    assert redis.exists(retrain_backoff_key(queue_id))


def test_retrain_lock_of_a_dead_run_expires_and_a_live_run_keeps_it(redis):
    import threading

    from redis.exceptions import LockError

    from app.learning import retraining

    key = "loupe:retrain-lock:test"
    # A run that died holding the lock: it is free again after its time to live.
    redis.set(key, "dead-worker", px=400)
    with retraining._held_while_alive(redis, key, seconds=1):
        # A live run keeps it past its time to live, and a second run cannot take it.
        threading.Event().wait(1.5)
        assert redis.exists(key)
        with pytest.raises(LockError):
            with retraining._held_while_alive(redis, key, seconds=1, wait=0.3):
                pass
    assert not redis.exists(key)
