"""The lead's adjudication list and decision over the JSON API (issue 11, point 1)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

from sqlalchemy import select, update

from app.models import ItemEvent, Label, ModelVersion, Outbox, Review, TrainingExample
from app.states import LabelSource


def _label(db, external_id):
    from app.models import Item

    return db.all(
        select(Label.value, Label.source, Label.reviewers, Label.id)
        .join(Item, Item.id == Label.item_id)
        .where(Item.external_id == external_id)
    )


def test_an_escalated_item_waits_with_its_reason_and_the_leads_label_is_final(desk, db):
    desk.setup()
    desk.push_ids("c1", "c2")
    ext = desk.escalate(desk.reviewers[0], reason="The note contradicts the amount")

    queues = desk.client.get("/api/v1/queues", headers=desk.reviewers[0]["headers"]).json
    assert queues["queues"][0]["waiting_for_lead"] == 1
    assert (
        desk.client.get("/api/v1/queues/claims", **{"headers": desk.lead["headers"]}).json[
            "waiting_for_lead"
        ]
        == 1
    )

    listed = desk.adjudications()
    assert listed.status_code == 200 and listed.json["waiting"] == 1
    (entry,) = listed.json["items"]
    assert entry["external_id"] == ext and entry["status"] == "escalated"
    assert [(r["kind"], r["by"], r["text"]) for r in entry["reasons"]] == [
        ("escalated", desk.reviewers[0]["name"], "The note contradicts the amount")
    ]
    assert entry["reviews"] == [] and entry["label"] is None
    assert [c["label"] for c in entry["prediction"]["candidates"]][0] == "fraud"
    assert entry["payload"] == {"amount": 120.5, "country": "FR"}

    r = desk.adjudicate(ext, "legit", comment="Regular payment; the note is about another card")
    assert r.status_code == 200, r.json
    assert r.json["label"]["value"] == "legit" and r.json["label"]["source"] == "adjudicated"
    assert r.json["adjudication"]["outcome"] == "decided"
    assert r.json["status"] == "done"
    ((value, source, reviewers, label_id),) = _label(db, ext)
    assert (value, source, reviewers) == ("legit", LabelSource.ADJUDICATED, [desk.lead["name"]])
    # Like any human label, it is promised to training in the same transaction.
    assert db.count(Outbox, Outbox.label_id == label_id) == 1

    assert desk.adjudications().json == {"waiting": 0, "items": []}
    again = desk.adjudicate(ext, "fraud")
    assert again.status_code == 409 and "not waiting for a lead" in again.json["message"]
    assert [row[0] for row in _label(db, ext)] == ["legit"]


def test_a_disagreement_lists_every_review_and_what_each_reviewer_was_shown(desk, db):
    desk.setup(reviews_required=2)
    desk.push_ids("d1", score=0.7)
    a, b = desk.reviewers
    ext, _ = desk.answer(a, "legit", comment="looks fine")
    ext2, answer = desk.answer(b, "fraud")
    assert ext == ext2 == "d1" and answer["status"] == "escalated"

    (entry,) = desk.adjudications().json["items"]
    assert [r["kind"] for r in entry["reasons"]] == ["disagreement"]
    assert [(r["reviewer"], r["label"], r["comment"]) for r in entry["reviews"]] == [
        (a["name"], "legit", "looks fine"),
        (b["name"], "fraud", None),
    ]
    shown = entry["reviews"][0]["shown"]
    assert shown["prediction_id"] == entry["prediction"]["id"]
    assert shown["model_version"] == "producer-1" and shown["source"] == "producer"
    assert [c["label"] for c in shown["candidates"]] == ["fraud", "legit", "duplicate"]
    assert shown["candidates"][0]["score"] == 0.7

    r = desk.adjudicate("d1", "fraud")
    assert r.status_code == 200
    ((value, source, reviewers, _),) = _label(db, "d1")
    assert (value, source) == ("fraud", "adjudicated")
    assert reviewers == [a["name"], b["name"], desk.lead["name"]]


def test_a_flagged_label_is_confirmed_or_replaced_while_untrained(desk, db):
    desk.setup(reviewers=1)
    desk.push_ids("f1", "f2", "f3")
    rev = desk.reviewers[0]
    f1 = desk.flag_and_answer(rev, "fraud", comment="amount typed in cents?")
    f2 = desk.flag_and_answer(rev, "fraud")
    f3 = desk.flag_and_answer(rev, "fraud")
    listed = desk.adjudications().json
    assert listed["waiting"] == 3
    entry = listed["items"][0]
    assert entry["status"] == "done" and entry["label"]["value"] == "fraud"
    assert entry["flags"][0]["comment"] == "amount typed in cents?"
    assert [r["kind"] for r in entry["reasons"]] == ["flagged"]

    # The same label: confirmed; the label stays the reviewer's, the flag is closed.
    r = desk.adjudicate(f1, "fraud", comment="checked the receipt")
    assert r.status_code == 200 and r.json["adjudication"]["outcome"] == "confirmed"
    assert _label(db, f1)[0][:2] == ("fraud", LabelSource.HUMAN)

    # Another label, no model trained on it yet: replaced, and its training promise too.
    (old_id,) = [row[3] for row in _label(db, f2)]
    r = desk.adjudicate(f2, "duplicate")
    assert r.status_code == 200 and r.json["adjudication"] == {
        "outcome": "replaced",
        "label": "duplicate",
        "previous_label": "fraud",
        "by": desk.lead["name"],
        "comment": None,
    }
    ((value, source, _, new_id),) = _label(db, f2)
    assert (value, source) == ("duplicate", LabelSource.ADJUDICATED)
    assert db.count(Outbox, Outbox.label_id == old_id) == 0
    assert db.count(Outbox, Outbox.label_id == new_id) == 1

    # Once a model trained on it, the label stays: 409, nothing changes, the flag waits.
    (f3_label,) = [row[3] for row in _label(db, f3)]
    _trained_on(db, f3_label)
    r = desk.adjudicate(f3, "legit")
    assert r.status_code == 409 and "already trained" in r.json["message"]
    assert _label(db, f3)[0][:2] == ("fraud", LabelSource.HUMAN)
    assert [e["external_id"] for e in desk.adjudications().json["items"]] == [f3]
    assert desk.adjudicate(f3, "fraud").json["adjudication"]["outcome"] == "confirmed"
    assert desk.adjudications().json["waiting"] == 0


def _trained_on(db, label_id):
    from app.db import session_scope
    from app.models import Label as L

    with session_scope(db.engine) as s:
        label = s.get_one(L, label_id)
        version = ModelVersion(
            queue_id=label.queue_id,
            version="v-test",
            snapshot="s",
            artifact=b"",
            artifact_sha256="0" * 64,
        )
        s.add(version)
        s.flush()
        s.add(
            TrainingExample(
                queue_id=label.queue_id,
                label_id=label_id,
                item_id=label.item_id,
                target=label.value,
                source=label.source,
                decided_at=label.decided_at,
                used_by_version_id=version.id,
            )
        )
        s.execute(update(Outbox).where(Outbox.label_id == label_id).values(processed_at=None))


def test_only_leads_and_admins_of_the_queue_adjudicate(desk, make, db):
    desk.setup()
    desk.push_ids("p1")
    ext = desk.escalate(desk.reviewers[0])
    scientist = desk.producer
    outsider = make.user("lead")
    admin = make.user("admin")
    for user, status in ((desk.reviewers[0], 403), (scientist, 403), (outsider, 404)):
        assert desk.adjudications(user).status_code == status
        r = desk.adjudicate(ext, "legit", user=user)
        assert r.status_code == status and r.json["error"] in ("forbidden", "not_found")
    assert db.count(Label) == 0
    assert desk.adjudications(admin).json["waiting"] == 1
    assert desk.adjudicate(ext, "legit", user=admin).status_code == 200


def test_bad_adjudications_get_clear_errors_and_write_nothing(desk, db):
    desk.setup()
    desk.push_ids("b1", "b2")
    ext = desk.escalate(desk.reviewers[0])
    url = f"/api/v1/queues/claims/items/{ext}/adjudicate"
    h = desk.lead["headers"]
    cases = [
        ({"label": "maybe"}, 422, "label"),
        ({}, 422, "label"),
        ({"label": ""}, 422, "label"),
        ({"label": 7}, 422, "label"),
        ({"label": "fraud", "extra": 1}, 422, "extra"),
        ({"label": "fraud", "comment": "x" * 2001}, 422, "comment"),
    ]
    for body, status, field in cases:
        r = desk.client.post(url, json=body, headers=h)
        assert r.status_code == status, (body, r.json)
        assert any(field in d["field"] for d in r.json["details"]), (body, r.json)
    r = desk.client.post(url, data="not json", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 422
    assert desk.adjudicate("no-such-item", "fraud").status_code == 404
    # b2 waits for a reviewer, not for a lead.
    r = desk.adjudicate("b2", "fraud")
    assert r.status_code == 409
    assert db.count(Label) == 0 and db.count(ItemEvent, ItemEvent.kind == "adjudicate") == 0
    hostile = '<script>alert("x")</script>\u202e'
    r = desk.adjudicate(ext, "fraud", comment=hostile)
    assert r.status_code == 200 and r.json["adjudication"]["comment"] == hostile


def _post(url, body, token):
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_two_leads_adjudicating_the_same_items_at_once_one_wins(desk, make, live_server, db):
    desk.setup(reviewers=1)
    ids = [f"r{i}" for i in range(6)]
    desk.push_ids(*ids)
    escalated = [desk.escalate(desk.reviewers[0]) for _ in ids]
    leads = [desk.lead, make.user("lead", queues=["claims"])]
    results: dict[str, list[int]] = {e: [] for e in escalated}
    barrier = threading.Barrier(2)

    def run(lead, label):
        barrier.wait()
        for ext in escalated:
            status = _post(
                f"{live_server}/api/v1/queues/claims/items/{ext}/adjudicate",
                {"label": label},
                lead["token"],
            )
            results[ext].append(status)

    threads = [
        threading.Thread(target=run, args=(lead, label))
        for lead, label in zip(leads, ("legit", "fraud"), strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for ext, statuses in results.items():
        assert sorted(statuses) == [200, 409], (ext, statuses)
        assert len(_label(db, ext)) == 1
    assert db.count(Label) == len(ids)
    assert db.count(ItemEvent, ItemEvent.kind == "adjudicate") == len(ids)
    assert db.count(Review) == 0


def test_the_review_page_says_what_waits_for_a_lead(desk, client):
    from tests.review.test_review_pages import login

    desk.setup(reviewers=1)
    desk.push_ids("e1")
    desk.escalate(desk.reviewers[0])
    login(client, desk.reviewers[0])
    html = client.get("/queues/claims/review").data.decode()
    assert "Nothing to review" in html and "1 item waits for a lead." in html
    assert "/queues/claims/desk" not in html  # a reviewer gets no link to the desk
    assert client.get("/queues/claims/desk").status_code == 403
    client2 = desk.client.application.test_client()
    login(client2, desk.lead)
    html = client2.get("/queues/claims/review").data.decode()
    assert "open the lead's desk" in html


def test_a_reviewer_cannot_reopen_what_a_lead_decided(desk, db):
    desk.setup(reviews_required=2)
    desk.push_ids("r1")
    a, b = desk.reviewers
    desk.answer(a, "legit")
    desk.answer(b, "fraud")
    assert desk.adjudicate("r1", "fraud").status_code == 200
    r = desk.client.post("/api/v1/queues/claims/items/r1/reopen", headers=a["headers"])
    assert r.status_code == 409 and "lead has decided" in r.json["message"]
    ((value, source, _, _),) = _label(db, "r1")
    assert (value, source) == ("fraud", LabelSource.ADJUDICATED)
