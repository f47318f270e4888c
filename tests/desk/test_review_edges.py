"""Edges between overlap, gold items, re-scoring and reopening: an answer a person gave is
never overruled by a model, a gold item gives nothing away, and one reviewer cannot rewrite
an overlap or pull an item off the lead's desk."""

from sqlalchemy import select

from app.db import new_session
from app.learning.rescoring import _still_waiting, _waiting_batch
from app.models import Item, Queue
from tests.conftest import item

ESCALATED = "escalated"


def test_rescoring_leaves_items_a_person_answered_while_they_wait_for_more(desk, engine):
    desk.setup(reviewers=2, reviews_required=2)
    desk.push_ids("r1", "r2")
    assert desk.answer(desk.reviewers[0], "legit")[0] == "r1"  # r1 now waits for a second
    with new_session(engine) as s:
        queue = s.scalars(select(Queue)).one()
        ids = {ext: i for i, ext in s.execute(select(Item.id, Item.external_id))}
        batch, _ = _waiting_batch(s, queue.id, 0, 100)
        assert [row.external_id for row in batch] == ["r2"]
        assert _still_waiting(s, [ids["r1"], ids["r2"]]) == {ids["r2"]}


def test_a_gold_item_the_model_would_accept_reads_like_an_audit(desk):
    desk.setup(reviewers=1, gold_rate=1, audit_rate=0.05)
    desk.push(item("g1", "fraud", 0.97, gold_label="legit"), item("a1", "fraud", 0.4))
    claim = desk.claim(desk.reviewers[0])
    assert claim["item"]["external_id"] == "g1"
    reason = claim["item"]["route"]["reason"]
    assert reason == "random audit (5%) of an item that would be auto-accepted (score 0.97)"
    assert claim["item"]["status"] == "in_review"


def test_an_escalated_gold_item_does_not_come_back_to_its_reviewer(desk):
    desk.setup(reviewers=1, gold_rate=1)
    desk.push(item("g1", "fraud", 0.6, gold_label="legit"), item("a1", "fraud", 0.6))
    assert desk.escalate(desk.reviewers[0]) is not None
    nxt = desk.claim(desk.reviewers[0])
    assert nxt is not None and nxt["item"]["external_id"] == "a1"


def test_an_answer_others_have_answered_too_cannot_be_taken_back(desk, client):
    desk.setup(reviewers=2, reviews_required=2)
    desk.push_ids("d1")
    a, b = desk.reviewers
    desk.answer(a, "legit")
    desk.answer(b, "fraud")  # a disagreement: the item waits for a lead
    assert desk.item("d1")["status"] == ESCALATED
    r = client.post("/api/v1/queues/claims/undo", headers=a["headers"])
    assert r.status_code == 409 and "cannot be taken back" in r.json["message"]
    r = client.post("/api/v1/queues/claims/items/d1/reopen", headers=b["headers"])
    assert r.status_code == 409
    assert desk.item("d1")["status"] == ESCALATED and len(desk.item("d1")["reviews"]) == 2
    assert [e["external_id"] for e in desk.adjudications().json["items"]] == ["d1"]
