"""Overlap and consensus (issue 11, point 2): majority, Dawid-Skene, dynamic second review,
reviewers' measured accuracy, and a queue too small for its overlap."""

from __future__ import annotations

from sqlalchemy import select

from app.desk import accuracy
from app.desk.accuracy import reviewer_accuracy
from app.models import Item, ItemEvent, Label, Queue
from app.states import ItemStatus, LabelSource
from tests.conftest import item


def _final(db, external_id):
    return db.all(
        select(Label.value, Label.source)
        .join(Item, Item.id == Label.item_id)
        .where(Item.external_id == external_id)
    )


def _status(db, external_id):
    return db.scalar(select(Item.status).where(Item.external_id == external_id))


def _patch(desk, **changes):
    r = desk.client.patch(
        "/api/v1/queues/claims/policy", json=changes, headers=desk.lead["headers"]
    )
    assert r.status_code == 200, r.json


def test_majority_settles_two_of_three_and_sends_a_three_way_split_to_a_lead(desk, db):
    desk.setup(reviewers=3, reviews_required=3, consensus="majority")
    desk.push_ids("m1", "m2")
    a, b, c = desk.reviewers
    for user, first, second in (
        (a, "fraud", "fraud"),
        (b, "fraud", "legit"),
        (c, "legit", "duplicate"),
    ):
        desk.answer(user, first)
        desk.answer(user, second)
    assert _final(db, "m1") == [("fraud", LabelSource.HUMAN)]
    assert _status(db, "m2") == ItemStatus.ESCALATED
    (entry,) = desk.adjudications().json["items"]
    assert entry["external_id"] == "m2" and "no majority among 3" in entry["reasons"][0]["text"]


def test_unanimous_is_the_default_and_any_split_waits_for_a_lead(desk, db):
    desk.setup(reviewers=3, reviews_required=3)
    desk.push_ids("u1")
    for user, label in zip(desk.reviewers, ("fraud", "fraud", "legit"), strict=True):
        desk.answer(user, label)
    assert _status(db, "u1") == ItemStatus.ESCALATED and _final(db, "u1") == []


def test_dawid_skene_trusts_the_reviewer_the_history_shows_reliable(desk, db):
    desk.setup(reviewers=3, reviews_required=3, consensus="dawid_skene")
    history = [f"h{i:02d}" for i in range(6)]
    desk.push_ids(*history)
    good, careless, other = desk.reviewers
    truth = {h: ("fraud" if i % 2 else "legit") for i, h in enumerate(history)}
    flip = {"fraud": "legit", "legit": "fraud"}
    for user, wrong in ((good, False), (careless, True), (other, False)):
        for _ in history:
            claim = desk.claim(user)
            ext = claim["item"]["external_id"]
            desk.decide(user, claim["token"], flip[truth[ext]] if wrong else truth[ext])
    # Two reliable answers against a careless one: settled by the reliable pair.
    assert all(_final(db, h) == [(truth[h], LabelSource.HUMAN)] for h in history)

    _patch(desk, reviews_required=2)
    desk.push_ids("n1", "n2")
    desk.answer(good, "duplicate")
    desk.answer(good, "legit")
    desk.answer(careless, "fraud")
    desk.answer(careless, "fraud")
    # One against one: Dawid-Skene sides with the reviewer it learned to trust.
    assert _final(db, "n1") == [("duplicate", LabelSource.HUMAN)]
    assert _final(db, "n2") == [("legit", LabelSource.HUMAN)]


def test_dawid_skene_without_history_to_tell_reviewers_apart_asks_a_lead(desk, db):
    desk.setup(reviewers=2, reviews_required=2, consensus="dawid_skene")
    desk.push_ids("x1")
    desk.answer(desk.reviewers[0], "fraud")
    desk.answer(desk.reviewers[1], "legit")
    assert _status(db, "x1") == ItemStatus.ESCALATED
    (entry,) = desk.adjudications().json["items"]
    assert "Dawid-Skene undecided" in entry["reasons"][0]["text"]


def test_overriding_a_confident_model_asks_one_more_review(desk, db):
    desk.setup(reviewers=3, second_review_on_override=0.8)
    desk.push_ids("o1", score=0.85)
    desk.push_ids("o2", score=0.85)
    desk.push_ids("o3", score=0.7)
    a, b, c = desk.reviewers
    ext, answer = desk.answer(a, "legit")  # overrides "fraud" at 85%
    assert ext == "o1" and answer["status"] == "pending" and answer["label"] is None
    why = db.scalar(select(ItemEvent.comment).where(ItemEvent.kind == "second_review"))
    assert "overrode the model's 'fraud' (85%)" in why
    assert desk.answer(a, "fraud")[1]["status"] == "done"  # o2: agrees with the model
    assert desk.answer(a, "legit")[1]["status"] == "done"  # o3: the model was not confident
    ext, answer = desk.answer(b, "legit")  # the second look at o1 agrees
    assert ext == "o1" and answer["status"] == "done" and answer["label"]["value"] == "legit"
    assert len(answer["reviews"]) == 2

    desk.push_ids("o4", score=0.9 - 1e-9)
    desk.answer(a, "duplicate")
    desk.answer(c, "legit")
    assert _status(db, "o4") == ItemStatus.ESCALATED
    (entry,) = desk.adjudications().json["items"]
    assert entry["second_reviews"] and entry["reasons"][0]["kind"] == "disagreement"


def test_a_reviewer_with_low_measured_accuracy_gets_a_second_review(desk, db, engine, monkeypatch):
    monkeypatch.setattr(accuracy, "MIN_ANSWERS", 3)
    desk.setup(reviewers=2, reviews_required=2)
    weak, strong = desk.reviewers
    desk.push_ids("a1", "a2", "a3")
    for _ in range(3):
        desk.answer(weak, "legit")
        desk.answer(strong, "fraud")
    for ext in ("a1", "a2", "a3"):
        assert desk.adjudicate(ext, "fraud").status_code == 200

    from app.db import new_session

    with new_session(engine) as s:
        queue = s.scalars(select(Queue)).one()
        assert reviewer_accuracy(session=s, queue=queue, user_id=weak["id"]).estimate == 0
        measured = reviewer_accuracy(session=s, queue=queue, user_id=strong["id"])
        assert (measured.estimate, measured.n) == (1.0, 3)
        assert reviewer_accuracy(session=s, queue=queue, user_id=desk.lead["id"]) is None

    _patch(desk, reviews_required=1, second_review_below_accuracy=0.5)
    desk.push_ids("a4", "a5")
    assert desk.answer(weak, "fraud")[1]["status"] == "pending"  # a4: weak alone is not enough
    ext, answer = desk.answer(strong, "fraud")
    assert ext == "a4" and answer["status"] == "done" and len(answer["reviews"]) == 2
    ext, answer = desk.answer(strong, "fraud")
    assert ext == "a5" and answer["status"] == "done"  # one review by a reliable reviewer
    why = db.scalar(select(ItemEvent.comment).where(ItemEvent.kind == "second_review"))
    assert "measured accuracy is 0% over 3 answers" in why


def test_accuracy_needs_a_minimum_of_answers(desk, engine):
    desk.setup(reviewers=2, reviews_required=2)
    desk.push_ids("z1")
    desk.answer(desk.reviewers[0], "fraud")
    desk.answer(desk.reviewers[1], "fraud")
    from app.db import new_session

    with new_session(engine) as s:
        queue = s.scalars(select(Queue)).one()
        assert reviewer_accuracy(session=s, queue=queue, user_id=desk.reviewers[0]["id"]) is None


def test_a_queue_with_fewer_members_than_its_overlap_says_so(desk, client):
    desk.setup(reviewers=1, reviews_required=5)
    body = client.get("/api/v1/queues/claims", headers=desk.lead["headers"]).json
    assert body["overlap"]["short"] is True
    assert body["overlap"]["eligible_reviewers"] == 3  # producer, lead and the reviewer
    assert "needs 5 different reviewers but the queue has 3 members" in body["overlap"]["message"]
    from tests.review.test_review_pages import login

    login(client, desk.reviewers[0])
    page = client.get("/queues").data.decode()
    assert "needs 5 different reviewers but the queue has 3 members" in page
    _patch(desk, reviews_required=3)
    assert client.get("/api/v1/queues/claims", headers=desk.lead["headers"]).json["overlap"] == {
        "reviews_required": 3,
        "eligible_reviewers": 3,
        "short": False,
        "message": None,
    }


def test_bad_consensus_policy_values_are_refused_naming_the_field(desk, client):
    desk.setup()
    for changes, field in (
        ({"consensus": "vote"}, "policy.consensus"),
        ({"consensus": None}, "policy.consensus"),
        ({"second_review_on_override": 1.5}, "policy.second_review_on_override"),
        ({"second_review_below_accuracy": "low"}, "policy.second_review_below_accuracy"),
    ):
        r = client.patch("/api/v1/queues/claims/policy", json=changes, headers=desk.lead["headers"])
        assert r.status_code == 422, (changes, r.json)
        assert [d["field"] for d in r.json["details"]][0].startswith(field), r.json
    policy = client.get("/api/v1/queues/claims", headers=desk.lead["headers"]).json["policy"]
    assert policy["consensus"] == "unanimous"
    assert policy["second_review_on_override"] is None
    assert policy["second_review_below_accuracy"] is None


def test_gold_answers_measure_the_reviewer_for_the_second_review(desk, db, engine, monkeypatch):
    """A reviewer who misses the known answers of gold items gets a second review on ordinary
    items; one who hits them does not (gold answers count in reviewer_accuracy)."""
    monkeypatch.setattr(accuracy, "MIN_ANSWERS", 3)
    desk.setup(reviewers=2, gold_rate=1)
    weak, strong = desk.reviewers
    desk.push(*[item(f"g{n}", "fraud", 0.6, gold_label="legit") for n in range(3)])
    for _ in range(3):
        desk.answer(weak, "fraud")
        desk.answer(strong, "legit")
    from app.db import new_session

    with new_session(engine) as s:
        queue = s.scalars(select(Queue)).one()
        assert reviewer_accuracy(session=s, queue=queue, user_id=weak["id"]).estimate == 0
        measured = reviewer_accuracy(session=s, queue=queue, user_id=strong["id"])
        assert (measured.estimate, measured.n) == (1.0, 3)

    _patch(desk, gold_rate=0, second_review_below_accuracy=0.5)
    desk.push_ids("o1", "o2")
    ext, answer = desk.answer(weak, "fraud")
    assert ext == "o1" and answer["status"] == "pending"  # the weak reviewer is checked
    why = db.scalar(select(ItemEvent.comment).where(ItemEvent.kind == "second_review"))
    assert "measured accuracy is 0% over 3 answers" in why
    ext, answer = desk.answer(strong, "fraud")
    assert ext == "o1" and answer["status"] == "done"
    ext, answer = desk.answer(strong, "legit")
    assert ext == "o2" and answer["status"] == "done"  # the strong reviewer alone suffices
