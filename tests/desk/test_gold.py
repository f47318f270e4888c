"""Gold items: served at the queue's gold rate, once per reviewer, looking like any item,
never a label, a training example, an audit-frame entry or an export; accuracy and
automation bias with Clopper-Pearson intervals."""

import json

import pytest
from sqlalchemy import func, select
from statsmodels.stats.proportion import proportion_confint

from app.db import session_scope
from app.desk.gold import gold_report
from app.errors import ValidationFailed
from app.ingest.service import ingest_items, parse_csv
from app.models import AuditFrame, GoldItem, Item, Label, Queue, Review, TrainingExample
from app.states import ItemStatus
from tests.conftest import item

INGEST = "/api/v1/queues/claims/items"
CLAIMS = "/api/v1/queues/claims/claims"


def _claim(client, user):
    r = client.post(CLAIMS, headers=user["headers"])
    assert r.status_code in (200, 204), r.json
    return r.json["claim"] if r.status_code == 200 else None


def _decide(client, user, token, label):
    r = client.post(
        f"/api/v1/claims/{token}/decision", json={"label": label}, headers=user["headers"]
    )
    assert r.status_code == 200, r.json
    return r.json


def _gold_ids(db):
    return {r[0] for r in db.all(select(GoldItem.item_id))}


def test_gold_items_go_to_every_reviewer_once_and_never_become_labels_or_training_data(
    client, make, db, run_jobs
):
    make.queue(audit_rate=0, retrain_after=0, gold_rate=1)
    producer = make.user("scientist", queues=["claims"])
    reviewers = [make.user("reviewer", queues=["claims"]) for _ in range(3)]
    # The model is sure of both gold items (it would auto-accept them): they go to people.
    batch = [
        item("c-1", "fraud", 0.99, gold_label="legit"),
        item("c-2", "legit", 0.55, gold_label="legit"),
        item("c-3", "fraud", 0.55),
        item("c-4", "fraud", 0.55),
    ]
    r = client.post(INGEST, headers=producer["headers"], json={"items": batch})
    assert r.status_code == 200, r.json
    assert r.json["routed"] == {"review": 4, "auto_accepted": 0, "audit": 0}
    gold = _gold_ids(db)
    assert len(gold) == 2

    served: dict[str, list[str]] = {u["name"]: [] for u in reviewers}
    for user in reviewers:
        while (claim := _claim(client, user)) is not None:
            # It looks like any item: no word of gold, leased to this reviewer.
            assert "gold" not in json.dumps(claim).lower()
            assert claim["item"]["status"] == "in_review"
            assert claim["item"]["reviews"] == []
            ext = claim["item"]["external_id"]
            served[user["name"]].append(ext)
            answer = _decide(client, user, claim["token"], "legit")
            assert "gold" not in json.dumps(answer).lower()
            assert answer["status"] == "done"
            assert answer["label"]["value"] == "legit"
    # At gold rate 1 each reviewer gets both gold items first, once each; the ordinary
    # items go once in all (k = 1).
    for user in reviewers:
        assert served[user["name"]][:2] == ["c-1", "c-2"]
        assert served[user["name"]].count("c-1") == served[user["name"]].count("c-2") == 1
    ordinary = [e for s in served.values() for e in s if e not in ("c-1", "c-2")]
    assert sorted(ordinary) == ["c-3", "c-4"]
    per_reviewer = db.all(
        select(Review.user_id, Review.item_id, func.count())
        .where(Review.item_id.in_(gold))
        .group_by(Review.user_id, Review.item_id)
    )
    assert len(per_reviewer) == 6 and {n for *_k, n in per_reviewer} == {1}

    run_jobs()  # the real feedback path: outbox rows to training examples
    assert db.count(Label) == 2 and db.count(TrainingExample) == 2
    assert db.count(Label, Label.item_id.in_(gold)) == 0
    assert db.count(TrainingExample, TrainingExample.item_id.in_(gold)) == 0
    assert db.count(AuditFrame, AuditFrame.item_id.in_(gold)) == 0
    assert db.count(Item, Item.id.in_(gold), Item.status == ItemStatus.GOLD) == 2
    exported = client.get(
        "/api/v1/queues/claims/labels?format=jsonl", headers=producer["headers"]
    ).get_data(as_text=True)
    assert "c-3" in exported and "c-1" not in exported and "c-2" not in exported


def test_several_reviewers_hold_one_gold_item_at_once_and_each_answers_it_once(client, make, db):
    make.queue(audit_rate=0, gold_rate=1)
    producer = make.user("scientist", queues=["claims"])
    a, b = (make.user("reviewer", queues=["claims"]) for _ in range(2))
    client.post(
        INGEST, headers=producer["headers"], json={"items": [item("g", gold_label="fraud")]}
    )
    claim_a, claim_b = _claim(client, a), _claim(client, b)
    assert claim_a["item"]["external_id"] == claim_b["item"]["external_id"] == "g"
    assert claim_a["token"] != claim_b["token"]
    # Holding it, a reviewer is not served it again (nothing else is waiting).
    assert _claim(client, a) is None
    _decide(client, a, claim_a["token"], "fraud")
    _decide(client, b, claim_b["token"], "legit")
    assert _claim(client, a) is None and _claim(client, b) is None
    assert db.count(Review) == 2 and db.count(Label) == 0


def test_gold_rate_zero_serves_no_gold_item(client, make):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    user = make.user("reviewer", queues=["claims"])
    client.post(
        INGEST,
        headers=producer["headers"],
        json={"items": [item("g", gold_label="fraud"), item("n")]},
    )
    claim = _claim(client, user)
    assert claim["item"]["external_id"] == "n"
    _decide(client, user, claim["token"], "fraud")
    assert _claim(client, user) is None


def test_an_escalated_or_undone_gold_answer_leaves_the_item_gold(client, make, db):
    make.queue(audit_rate=0, gold_rate=1)
    producer = make.user("scientist", queues=["claims"])
    a, b = (make.user("reviewer", queues=["claims"]) for _ in range(2))
    client.post(
        INGEST, headers=producer["headers"], json={"items": [item("g", gold_label="fraud")]}
    )
    claim = _claim(client, a)
    r = client.post(
        f"/api/v1/claims/{claim['token']}/escalate", json={"reason": "odd"}, headers=a["headers"]
    )
    assert r.status_code == 200 and r.json["status"] == "in_review"
    claim = _claim(client, b)
    _decide(client, b, claim["token"], "legit")
    r = client.post("/api/v1/queues/claims/undo", headers=b["headers"])
    assert r.status_code == 200, r.json
    _decide(client, b, r.json["claim"]["token"], "fraud")
    assert db.scalar(select(Item.status)) == ItemStatus.GOLD
    assert db.count(Review) == 1 and db.count(Label) == 0


@pytest.mark.parametrize(
    "gold_label, message",
    [
        ("maybe", "'maybe' is not one of the queue's labels"),
        ("<script>alert(1)</script>", "is not one of the queue's labels"),
        (5, "Input should be a valid string"),
        ("", "at least 1 character"),
        (["fraud"], "Input should be a valid string"),
        ("x" * 201, "at most 200 characters"),
    ],
)
def test_a_bad_gold_label_is_refused_naming_the_row_and_nothing_is_stored(
    client, make, db, gold_label, message
):
    make.queue()
    producer = make.user("scientist", queues=["claims"])
    batch = [item("ok-1"), item("bad", gold_label=gold_label), item("ok-2")]
    for body, kind in (
        (json.dumps({"items": batch}), "application/json"),
        ("\n".join(json.dumps(i) for i in batch), "application/x-ndjson"),
    ):
        r = client.post(INGEST, headers={**producer["headers"], "Content-Type": kind}, data=body)
        assert r.status_code == 422, r.json
        bad = [d for d in r.json["details"] if d["index"] == 1]
        assert bad and bad[0]["field"] == "gold_label" and message in bad[0]["message"]
        assert "rows 1" in r.json["message"]
    assert db.count(Item) == 0 and db.count(GoldItem) == 0


def test_csv_rows_carry_gold_labels_and_an_unknown_one_names_its_row(app, engine, make, db):
    make.queue()
    text = "external_id,amount,gold_label\na,10,fraud\nb,20,\nc,30,nope\n"
    with session_scope(engine) as s:
        queue = s.scalar(select(Queue))
        with pytest.raises(ValidationFailed) as refused:
            ingest_items(session=s, queue=queue, items=parse_csv(text))
        assert refused.value.details == [
            {
                "index": 2,
                "field": "gold_label",
                "message": "'nope' is not one of the queue's labels",
            }
        ]
    assert db.count(Item) == 0
    with session_scope(engine) as s:
        queue = s.scalar(select(Queue))
        ingest_items(session=s, queue=queue, items=parse_csv(text.replace("nope", "legit")))
    golds = dict(db.all(select(Item.external_id, GoldItem.label).join(GoldItem)))
    assert golds == {"a": "fraud", "c": "legit"}
    assert db.scalar(select(Item.status).where(Item.external_id == "b")) == ItemStatus.PENDING


def test_leads_mark_and_unmark_gold_items(client, make, db):
    make.queue(audit_rate=0, gold_rate=1)
    make.queue(name="other")
    producer = make.user("scientist", queues=["claims"])
    lead = make.user("lead", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    outsider = make.user("lead", queues=["other"])
    client.post(
        INGEST, headers=producer["headers"], json={"items": [item("a"), item("b"), item("c")]}
    )
    url = "/api/v1/queues/claims/items/{}/gold"
    assert (
        client.post(
            url.format("a"), json={"label": "fraud"}, headers=reviewer["headers"]
        ).status_code
        == 403
    )
    assert (
        client.post(
            url.format("a"), json={"label": "fraud"}, headers=outsider["headers"]
        ).status_code
        == 404
    )
    assert (
        client.post(url.format("zz"), json={"label": "fraud"}, headers=lead["headers"]).status_code
        == 404
    )
    assert client.post(url.format("a"), json={}, headers=reviewer["headers"]).status_code == 403
    bad = client.post(url.format("a"), json={"label": "nope"}, headers=lead["headers"])
    assert bad.status_code == 422 and bad.json["details"][0]["field"] == "label"
    for body in ({}, {"label": 3}, {"label": "fraud", "x": 1}, {"label": "\u0000"}):
        assert client.post(url.format("a"), json=body, headers=lead["headers"]).status_code == 422
    assert db.count(GoldItem) == 0

    # A leased item cannot become gold.
    leased = _claim(client, make.user("reviewer", queues=["claims"]))
    assert leased["item"]["external_id"] == "a"
    r = client.post(url.format("a"), json={"label": "fraud"}, headers=lead["headers"])
    assert r.status_code == 409
    r = client.post(url.format("b"), json={"label": "fraud"}, headers=lead["headers"])
    assert r.status_code == 200 and r.json == {
        "external_id": "b",
        "gold": True,
        "label": "fraud",
        "outcome": "marked",
    }
    assert (
        client.get(url.format("b")[: -len("/gold")], headers=lead["headers"]).json["status"]
        == "gold"
    )
    # A reviewer reading it sees an ordinary item.
    assert (
        client.get(url.format("b")[: -len("/gold")], headers=reviewer["headers"]).json["status"]
        == "in_review"
    )
    held = _claim(client, reviewer)
    assert held["item"]["external_id"] == "b"  # gold first, at rate 1
    # Unanswered, unmarking sends it back to the queue; answered, it is retired.
    r = client.post(url.format("c"), json={"label": "legit"}, headers=lead["headers"])
    assert r.status_code == 200
    assert client.delete(url.format("c"), headers=lead["headers"]).json["outcome"] == "returned"
    assert db.scalar(select(Item.status).where(Item.external_id == "c")) == ItemStatus.PENDING
    _decide(client, reviewer, held["token"], "legit")
    assert client.delete(url.format("b"), headers=lead["headers"]).json["outcome"] == "retired"
    # Unmarking again changes nothing.
    assert client.delete(url.format("b"), headers=lead["headers"]).json["outcome"] == "retired"
    assert client.delete(url.format("zz"), headers=lead["headers"]).status_code == 404
    report = client.get("/api/v1/queues/claims/gold", headers=lead["headers"]).json
    assert [g["retired"] for g in report["items"]] == [True]
    assert report["accuracy"]["n"] == 0  # retired answers count no more
    assert db.scalar(select(Item.status).where(Item.external_id == "b")) == ItemStatus.GOLD
    assert db.count(Label) == 0


def test_accuracy_and_automation_bias_with_clopper_pearson_intervals(client, make, engine):
    make.queue(audit_rate=0, gold_rate=1)
    producer = make.user("scientist", queues=["claims"])
    follower, careful = (make.user("reviewer", queues=["claims"]) for _ in range(2))
    lead = make.user("lead", queues=["claims"])
    # Three gold items: the model is wrong on two (says fraud, the answer is legit).
    client.post(
        INGEST,
        headers=producer["headers"],
        json={
            "items": [
                item("w1", "fraud", 0.7, gold_label="legit"),
                item("w2", "fraud", 0.7, gold_label="legit"),
                item("r1", "fraud", 0.7, gold_label="fraud"),
            ]
        },
    )
    for user, answers in ((follower, "fraud"), (careful, None)):
        while (claim := _claim(client, user)) is not None:
            ext = claim["item"]["external_id"]
            _decide(client, user, claim["token"], answers or ("fraud" if ext == "r1" else "legit"))
    assert client.get("/api/v1/queues/claims/gold", headers=follower["headers"]).status_code == 403
    report = client.get("/api/v1/queues/claims/gold", headers=lead["headers"]).json
    by = {r["reviewer"]: r for r in report["reviewers"]}
    low, high = proportion_confint(1, 3, alpha=0.05, method="beta")
    assert by[follower["name"]]["accuracy"] == {
        "estimate": round(1 / 3, 4),
        "lower": round(low, 4),
        "upper": round(high, 4),
        "n": 3,
        "method": "clopper-pearson",
    }
    assert by[careful["name"]]["accuracy"]["estimate"] == 1.0
    assert by[follower["name"]]["automation_bias"]["estimate"] == 1.0
    assert by[follower["name"]]["automation_bias"]["n"] == 2
    assert by[careful["name"]]["automation_bias"]["estimate"] == 0.0
    assert report["automation_bias"]["n"] == 4 and report["automation_bias"]["estimate"] == 0.5
    assert report["accuracy"]["n"] == 6
    with session_scope(engine) as s:
        assert (
            gold_report(session=s, queue=s.scalar(select(Queue)))["accuracy"] == report["accuracy"]
        )
    assert {g["external_id"]: g["model_label"] for g in report["items"]} == {
        "w1": "fraud",
        "w2": "fraud",
        "r1": "fraud",
    }
    # The dashboard's gold panel draws the same figures, one whisker per reviewer.
    panels = client.get("/api/v1/queues/claims/dashboard", headers=lead["headers"]).json
    gold = next(p for p in panels["panels"] if p["key"] == "gold")
    rows = {r["name"]: r for r in gold["data"]["rows"]}
    assert gold["chart"] == "intervals" and not gold["empty"]
    assert rows[follower["name"]]["estimate"] == round(1 / 3, 4)
    assert rows[follower["name"]]["n"] == 3 and rows[careful["name"]]["estimate"] == 1.0
    assert gold["data"]["reference"] == report["accuracy"]["estimate"]
