"""Re-scoring after a change of active model stops as soon as its version is replaced, so a
retired model never has the last word on a waiting item."""

from sqlalchemy import select

from app.db import session_scope
from app.demo.claims import generate_claims
from app.ingest.service import ingest_items, parse_rows
from app.learning.registry import activate
from app.learning.rescoring import Progress, rescore_batch, rescore_queue
from app.learning.scoring import LoadedModel
from app.learning.training import train_model_version
from app.models import Item, ModelVersion, Prediction, Queue
from tests.learning.test_training import _labelled


def _waiting_items_and_two_versions(make, engine, n_waiting=12):
    """(queue id, v1 id and name, v2 id and name): v1 active, and items waiting for review
    that v1 scored when they arrived."""
    queue_id = make.queue(audit_rate=0, retrain_after=0, auto_accept_threshold=1, min_margin=1)
    make.user("reviewer", queues=["claims"])
    _labelled(engine, 120)
    with session_scope(engine) as s:
        v1 = train_model_version(db=s, queue_id=queue_id).version
        queue = s.get(Queue, queue_id)
        queue.policy = {**queue.policy, "features": [{"name": "currency"}]}
        v2 = train_model_version(db=s, queue_id=queue_id).version
        activate(session=s, version=v1, by="test")
    with session_scope(engine) as s:
        ingest_items(
            session=s,
            queue=s.get(Queue, queue_id),
            items=parse_rows(
                {"external_id": f"w{i}", "payload": c["payload"]}
                for i, c in enumerate(generate_claims(n_waiting, seed=5))
            ),
        )
    return queue_id, (v1.id, v1.version), (v2.id, v2.version)


def _make_active(engine, version_id: int, by: str) -> None:
    with session_scope(engine) as s:
        activate(session=s, version=s.get(ModelVersion, version_id), by=by)


def _latest_versions(db) -> dict[str, str]:
    """The model version of each waiting item's newest prediction."""
    latest = {}
    for external_id, version in db.all(
        select(Item.external_id, Prediction.model_version)
        .join(Prediction, Prediction.item_id == Item.id)
        .where(Item.status == "pending")
        .order_by(Prediction.id)
    ):
        latest[external_id] = version
    return latest


def test_rescoring_stops_when_its_version_is_replaced(make, engine, db):
    queue_id, (v1, v1_name), (v2, v2_name) = _waiting_items_and_two_versions(make, engine)
    assert set(_latest_versions(db).values()) == {v1_name} and len(_latest_versions(db)) == 12
    _make_active(engine, v2, "promoted by a lead")
    first = rescore_batch(engine, queue_id=queue_id, version_id=v2, size=5)
    assert first.rescored == 5
    _make_active(engine, v1, "rolled back by a lead")  # before v2's next batch

    after = rescore_batch(engine, queue_id=queue_id, version_id=v2, after_id=first.last_item_id)
    assert after == Progress(0, None)
    assert rescore_queue(engine, queue_id=queue_id, version_id=v2) == 0  # nor from the start
    versions = sorted(_latest_versions(db).values())
    assert versions.count(v2_name) == 5 and versions.count(v1_name) == 7
    # The re-scoring the roll-back promised gives v1 the last word again, where it lost it.
    assert rescore_queue(engine, queue_id=queue_id, version_id=v1) == 5
    assert set(_latest_versions(db).values()) == {v1_name}


def test_a_batch_scored_while_its_version_was_replaced_is_not_written(
    make, engine, db, monkeypatch
):
    queue_id, (v1, v1_name), (v2, v2_name) = _waiting_items_and_two_versions(make, engine)
    _make_active(engine, v2, "promoted by a lead")
    candidates = LoadedModel.candidates

    def rolled_back_meanwhile(self, proba, *rest):
        _make_active(engine, v1, "rolled back by a lead")  # while the batch is being scored
        return candidates(self, proba, *rest)

    monkeypatch.setattr(LoadedModel, "candidates", rolled_back_meanwhile)
    assert rescore_batch(engine, queue_id=queue_id, version_id=v2) == Progress(0, None)
    assert db.count(Prediction, Prediction.model_version == v2_name) == 0
    assert set(_latest_versions(db).values()) == {v1_name}


def test_rescoring_holds_back_what_the_drift_guard_holds_at_arrival(make, engine, db):
    """Items waiting while the queue's inputs drift are not auto-accepted by the next model
    either: a shifted value inside the training range looks ordinary one item at a time, and
    only the queue-level hold (the buckets recent inputs crowd) keeps it from a person-free
    route, on re-scoring as at arrival."""
    queue_id = make.queue(audit_rate=0, retrain_after=0, auto_accept_threshold=1, min_margin=1)
    make.user("reviewer", queues=["claims"])
    _labelled(engine, 600)
    with session_scope(engine) as s:
        v1 = train_model_version(db=s, queue_id=queue_id).version
        v1_id, high = v1.id, v1.card["profile"]["features"]["amount"]["high"]
    _labelled(engine, 60, seed=2)
    with session_scope(engine) as s:
        v2_id = train_model_version(db=s, queue_id=queue_id).version.id
    _make_active(engine, v1_id, "test")
    shifted = [
        {
            "external_id": f"x{i}",
            "payload": {**c["payload"], "amount": c["payload"]["amount"] * 100},
        }
        for i, c in enumerate(generate_claims(400, seed=12))
    ]
    ordinary = [
        {"external_id": f"o{i}", "payload": c["payload"]}
        for i, c in enumerate(generate_claims(300, seed=13))
    ]
    with session_scope(engine) as s:
        ingest_items(session=s, queue=s.get(Queue, queue_id), items=parse_rows(shifted + ordinary))
    # Nothing was auto-accepted at arrival (threshold 1); now the lead lowers the bar and a
    # new version is promoted, which re-scores every waiting item.
    with session_scope(engine) as s:
        queue = s.get(Queue, queue_id)
        queue.policy = {**queue.policy, "auto_accept_threshold": 0.6, "min_margin": 0}
    _make_active(engine, v2_id, "promoted")
    assert rescore_queue(engine, queue_id=queue_id, version_id=v2_id) == 700

    routes = {
        ext: (status, reason)
        for ext, status, reason in db.all(select(Item.external_id, Item.status, Item.route_reason))
    }
    inside = [it for it in shifted if it["payload"]["amount"] <= high]
    assert len(inside) >= 10, "some shifted amounts lie inside the training range"
    assert all(routes[it["external_id"]][0] == "pending" for it in shifted), [
        routes[it["external_id"]] for it in shifted if routes[it["external_id"]][0] != "pending"
    ][:3]
    assert all("recent items crowd" in routes[it["external_id"]][1] for it in inside)
    # The guard holds the shifted values only: ordinary items now qualify and go through.
    accepted = sum(routes[it["external_id"]][0] == "auto_accepted" for it in ordinary)
    assert accepted >= 30, accepted
