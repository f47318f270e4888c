"""Blind overlap (point 2) and what each reviewer was shown (point 8): stored with the
review, exported as `shown`, never another reviewer's answer before one's own."""

from __future__ import annotations

import csv
import io
import json
import re

from sqlalchemy import select

from app.models import Prediction, Review
from tests.review.test_review_pages import login

SECRET = "first-reviewer-thinks-chargeback"


def test_nobody_sees_another_reviewers_answer_before_answering(desk, make, client):
    desk.setup(reviewers=3, reviews_required=2)
    desk.push_ids("b1")
    a, b, c = desk.reviewers
    desk.answer(a, "legit", comment=SECRET)

    # b claims the item over the API: the claim shows the item, not a's answer.
    claim = desk.claim(b)
    assert claim["item"]["external_id"] == "b1" and claim["item"]["reviews"] == []
    assert SECRET not in json.dumps(claim) and a["name"] not in json.dumps(claim)
    assert desk.item("b1", user=b)["reviews"] == []
    # Nor can another reviewer read it while the item is open; a sees their own answer only.
    assert desk.item("b1", user=c)["reviews"] == []
    assert [r["reviewer"] for r in desk.item("b1", user=a)["reviews"]] == [a["name"]]
    # The lead sees every answer (the lead adjudicates, and does not hold the claim).
    assert [r["comment"] for r in desk.item("b1")["reviews"]] == [SECRET]
    # Once b has answered, b sees both.
    answer = desk.decide(b, claim["token"], "fraud")
    assert [r["label"] for r in answer["reviews"]] == ["legit", "fraud"]


def test_the_review_page_shows_no_other_answer(desk, client):
    desk.setup(reviewers=2, reviews_required=2)
    desk.push_ids("p1")
    a, b = desk.reviewers
    desk.answer(a, "legit", comment=SECRET)
    login(client, b)
    html = client.get("/queues/claims/review").data.decode()
    assert "p1" in html
    assert SECRET not in html and a["name"] not in html


def test_each_review_keeps_what_its_reviewer_was_shown_and_exports_carry_it(desk, db, client):
    desk.setup(reviewers=2, reviews_required=2)
    desk.push_ids("s1", score=0.7)
    a, b = desk.reviewers
    desk.answer(a, "fraud")
    # b answers through the review page: the same record.
    csrf = login(client, b)
    html = client.get("/queues/claims/review").data.decode()
    action = re.search(r'hx-post="(/queues/claims/claims/[^"]+/decide)"', html).group(1)
    swap = client.post(
        action, data={"label": "fraud"}, headers={"HX-Request": "true", "X-CSRFToken": csrf}
    )
    assert swap.status_code == 200 and "Saved" in swap.data.decode()

    prediction_id = db.scalar(select(Prediction.id))
    expected = {
        "prediction_id": prediction_id,
        "model_version": "producer-1",
        "source": "producer",
        "candidates": [
            {"label": "fraud", "score": 0.7},
            {"label": "legit", "score": 0.15},
            {"label": "duplicate", "score": 0.15},
        ],
    }
    assert [s for (s,) in db.all(select(Review.shown).order_by(Review.id))] == [expected] * 2

    r = client.get("/api/v1/queues/claims/labels?format=jsonl", headers=desk.lead["headers"])
    (row,) = [json.loads(line) for line in r.data.decode().splitlines()]
    assert row["label"] == "fraud"
    assert row["shown"] == [
        {"reviewer": a["name"], **expected},
        {"reviewer": b["name"], **expected},
    ]
    r = client.get("/api/v1/queues/claims/labels?format=csv", headers=desk.lead["headers"])
    (csv_row,) = list(csv.DictReader(io.StringIO(r.data.decode())))
    assert json.loads(csv_row["shown"])[1]["reviewer"] == b["name"]


def test_labels_nobody_reviewed_export_an_empty_shown(desk, client):
    desk.setup()
    desk.push_ids("auto1", score=0.99)  # auto-accepted: no person saw it
    r = client.get("/api/v1/queues/claims/labels?format=jsonl", headers=desk.lead["headers"])
    (row,) = [json.loads(line) for line in r.data.decode().splitlines()]
    assert row["source"] == "auto" and row["shown"] == []
