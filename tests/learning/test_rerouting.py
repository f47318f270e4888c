"""After a promotion, re-scoring re-routes the waiting items (issue 10, point 8): items the
new model is sure of are auto-accepted (or drawn for audit, or held while auto-accept is
paused), the others wait for review; an item a reviewer holds is untouched; every item keeps
the reason it first came with, the change noted after it."""

from sqlalchemy import select

from app.db import session_scope
from app.demo.claims import generate_claims
from app.learning.registry import activate
from app.learning.training import train_model_version
from app.models import AuditFrame, Item, Label, ModelVersion, Prediction, Queue
from app.queues.events import record
from app.queues.service import policy_of
from app.routing.placement import RESCORED_NOTE, first_reason, place
from app.states import QueueEventKind
from tests.learning.test_training import _labelled

N_WAITING = 60


def _two_versions_and_waiting_items(client, make, engine):
    """v1 active and trusted with nothing (threshold 1), N_WAITING items waiting that v1
    routed to review, and v2 trained but not active; returns (people, v2's name)."""
    queue_id = make.queue(audit_rate=0, retrain_after=0, auto_accept_threshold=1, min_margin=1)
    reviewer = make.user("reviewer", queues=["claims"])
    lead = make.user("lead", queues=["claims"])
    producer = make.user("scientist", queues=["claims"])
    # Enough labels of every answer (app.routing.decision.MIN_LABELS_PER_ANSWER) for v2 to
    # auto-accept at all.
    _labelled(engine, 400)
    with session_scope(engine) as s:
        v1 = train_model_version(db=s, queue_id=queue_id).version
        queue = s.get(Queue, queue_id)
        # Narrower candidate sets: more items with a single sure answer.
        queue.policy = {**queue.policy, "coverage": 0.75}
        v2 = train_model_version(db=s, queue_id=queue_id).version
        activate(session=s, version=v1, by="test")
        v2_name = v2.version
    items = [
        {"external_id": f"w{i}", "payload": c["payload"]}
        for i, c in enumerate(generate_claims(N_WAITING, seed=7))
    ]
    r = client.post(
        "/api/v1/queues/claims/items", json={"items": items}, headers=producer["headers"]
    )
    assert r.status_code == 200 and r.json["routed"]["review"] == N_WAITING, r.json
    return {"reviewer": reviewer, "lead": lead, "producer": producer}, v2_name


def _trust_more(client, lead, **policy):
    r = client.patch("/api/v1/queues/claims/policy", json=policy, headers=lead["headers"])
    assert r.status_code == 200, r.json


def _promote(client, lead, version, run_jobs):
    r = client.post(f"/api/v1/queues/claims/models/{version}/promote", headers=lead["headers"])
    assert r.status_code == 200, r.json
    run_jobs()  # the re-scoring job the promotion handed over, in a real RQ worker


def _newest_predictions(db) -> dict[str, Prediction]:
    newest = {}
    for external_id, prediction in db.all(
        select(Item.external_id, Prediction)
        .join(Prediction, Prediction.item_id == Item.id)
        .order_by(Prediction.id)
    ):
        newest[external_id] = prediction
    return newest


def test_a_promotion_re_routes_waiting_items_and_leaves_held_ones_alone(
    client, make, engine, db, run_jobs
):
    people, v2 = _two_versions_and_waiting_items(client, make, engine)
    before = dict(db.all(select(Item.external_id, Item.route_reason)))
    held = client.post("/api/v1/queues/claims/claims", headers=people["reviewer"]["headers"])
    held_id = held.json["claim"]["item"]["external_id"]
    _trust_more(client, people["lead"], auto_accept_threshold=0.55, min_margin=0, audit_rate=0.2)
    _promote(client, people["lead"], v2, run_jobs)

    items = {i.external_id: i for (i,) in db.all(select(Item)) if i.external_id.startswith("w")}
    newest = _newest_predictions(db)
    labels = {lab.item_id: lab for (lab,) in db.all(select(Label))}
    frame = {f.item_id: f for (f,) in db.all(select(AuditFrame))}
    with session_scope(engine, write=False) as s:
        queue = s.scalar(select(Queue))
        policy, name = policy_of(queue), queue.name

    # The held item: the prediction its reviewer sees, its route and its reason stay.
    assert items[held_id].status == "in_review"
    assert newest[held_id].model_version != v2
    assert items[held_id].route_reason == before[held_id]

    counts = {"auto_accepted": 0, "audit": 0, "review": 0}
    for ext, item in items.items():
        if ext == held_id:
            continue
        prediction = newest[ext]
        assert prediction.model_version == v2
        # Routed exactly as an arriving item with these answers would be.
        expected = place(
            policy=policy,
            paused=None,
            queue_name=name,
            external_id=ext,
            candidates=prediction.candidates,
            detail=prediction.detail,
        )
        assert item.route_decision == expected.route.decision, ext
        # The first reason stays first; the change (or that there was none) follows.
        assert first_reason(item.route_reason) == before[ext]
        assert item.route_reason.startswith(before[ext] + "; ")
        if expected.route.decision == "review":
            assert item.status == "pending" and item.id not in labels
            counts["review"] += 1
            continue
        assert f"re-routed by {v2}: " in item.route_reason
        assert frame[item.id].model_version == v2
        assert frame[item.id].answer == prediction.candidates[0]["label"]
        if expected.route.decision == "auto_accept":
            counts["auto_accepted"] += 1
            assert item.status == "auto_accepted"
            label = labels[item.id]
            assert (label.source, label.value, label.model_version) == (
                "auto",
                prediction.candidates[0]["label"],
                v2,
            )
            assert not frame[item.id].to_person
        else:
            counts["audit"] += 1
            assert item.status == "pending" and item.id not in labels
            assert frame[item.id].to_person and frame[item.id].sample_rate == 0.2
    # The trusted model takes a real share of the work off people, and leaves some to them.
    assert counts["auto_accepted"] >= 10 and counts["review"] >= 1, counts
    # A re-scored item that stays in review says so once, not once per re-score.
    assert all(i.route_reason.count(RESCORED_NOTE) <= 1 for i in items.values())
    # Reviewers now get only what still needs a person.
    r = client.get("/api/v1/queues/claims", headers=people["lead"]["headers"])
    assert r.json["counts"]["auto_accepted"] == counts["auto_accepted"], r.json


def test_while_auto_accept_is_paused_re_routing_sends_sure_items_to_people(
    client, make, engine, db, run_jobs
):
    people, v2 = _two_versions_and_waiting_items(client, make, engine)
    _trust_more(client, people["lead"], auto_accept_threshold=0.55, min_margin=0, audit_rate=0)
    with session_scope(engine) as s:
        record(
            session=s,
            queue=s.scalar(select(Queue)),
            kind=QueueEventKind.AUTO_ACCEPT_PAUSED,
            reason="audited precision below target",
        )
    _promote(client, people["lead"], v2, run_jobs)
    assert db.count(Label, Label.source == "auto") == 0
    assert db.count(Item, Item.status == "auto_accepted") == 0
    paused = [
        i for (i,) in db.all(select(Item).where(Item.route_reason.contains("auto-accept paused")))
    ]
    assert len(paused) >= 10
    frame = {f.item_id: f for (f,) in db.all(select(AuditFrame))}
    for item in paused:
        # In the frame as an item a person answers for sure: the estimate counts it.
        assert frame[item.id].to_person and frame[item.id].sample_rate == 1.0
        assert item.route_decision == "review" and item.status == "pending"
    assert db.count(ModelVersion, ModelVersion.active) == 1
