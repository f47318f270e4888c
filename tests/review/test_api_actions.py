"""Escalate, flag, heartbeat, undo and reopen through the JSON API (the review page's actions)."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from app.learning.training import train_model_version
from app.models import (
    Claim,
    Item,
    ItemEvent,
    Label,
    ModelVersion,
    Outbox,
    QueueMember,
    Review,
    TrainingExample,
    utcnow,
)
from app.queues.service import get_queue
from app.review.actions import UNDO_WINDOW
from tests.conftest import item

CLAIMS = "/api/v1/queues/claims/claims"
UNDO = "/api/v1/queues/claims/undo"


def _push(client, producer, items):
    r = client.post(
        "/api/v1/queues/claims/items", json={"items": items}, headers=producer["headers"]
    )
    assert r.status_code == 200, r.json


def _claim(client, user):
    r = client.post(CLAIMS, headers=user["headers"])
    assert r.status_code == 200, r.json
    return r.json["claim"]


def _decide(client, user, token, label):
    r = client.post(f"/api/v1/claims/{token}/decision", json={"label": label}, **_h(user))
    assert r.status_code == 200, r.json
    return r.json


def _h(user):
    return {"headers": user["headers"]}


def _reopen_url(external_id):
    return f"/api/v1/queues/claims/items/{external_id}/reopen"


def _refused(r, status, code=None):
    assert r.status_code == status, (r.status_code, r.json)
    assert set(r.json) == {"error", "message", "details"} and r.json["message"]
    if code:
        assert r.json["error"] == code


def _age(session, model, **values):
    session.execute(model.__table__.update().values(**values))
    session.commit()


@pytest.fixture
def team(client, make):
    """A queue with five waiting items, a producer, and reviewers alice and bob."""
    make.queue(audit_rate=0, lease_seconds=120)
    producer = make.user("scientist", queues=["claims"])
    alice = make.user("reviewer", queues=["claims"], name="alice")
    bob = make.user("reviewer", queues=["claims"], name="bob")
    _push(client, producer, [item(f"c-{i}", "fraud", 0.55) for i in range(1, 6)])
    return {"producer": producer, "alice": alice, "bob": bob}


# --- escalate ---------------------------------------------------------------------------


def test_escalate_takes_the_item_out_of_review_with_its_reason(client, team, db):
    alice, bob = team["alice"], team["bob"]
    claim = _claim(client, alice)
    reason = "customer called twice <b>about</b> it"
    r = client.post(
        f"/api/v1/claims/{claim['token']}/escalate", json={"reason": reason}, **_h(alice)
    )
    assert r.status_code == 200, r.json
    assert r.json["external_id"] == claim["item"]["external_id"]
    assert r.json["status"] == "escalated" and r.json["label"] is None
    assert r.json["reason"] == reason
    assert db.all(select(ItemEvent.kind, ItemEvent.comment)) == [("escalate", reason)]
    assert db.all(select(Claim.state)) == [("escalated",)]
    assert db.all(
        select(Item.status, Item.lease_token).where(
            Item.external_id == claim["item"]["external_id"]
        )
    ) == [("escalated", None)]
    # The claim has ended: it can be neither decided nor kept alive any more.
    decided = client.post(
        f"/api/v1/claims/{claim['token']}/decision", json={"label": "fraud"}, **_h(alice)
    )
    _refused(decided, 410, "gone")
    _refused(client.post(f"/api/v1/claims/{claim['token']}/heartbeat", **_h(alice)), 410)
    # Nobody is handed the escalated item again.
    seen = {_claim(client, bob)["item"]["external_id"] for _ in range(4)}
    assert claim["item"]["external_id"] not in seen and len(seen) == 4
    assert client.post(CLAIMS, **_h(bob)).status_code == 204


# --- refusals shared by escalate and flag ------------------------------------------------

BAD_BODIES = [
    ("missing", {"json": {}}),
    ("empty", {"json": {"FIELD": ""}}),
    ("blank", {"json": {"FIELD": "  \n\t "}}),
    ("number", {"json": {"FIELD": 5}}),
    ("list", {"json": {"FIELD": ["odd"]}}),
    ("null", {"json": {"FIELD": None}}),
    ("object", {"json": {"FIELD": {"text": "odd"}}}),
    ("too long", {"json": {"FIELD": "x" * 2001}}),
    ("unknown field", {"json": {"FIELD": "odd", "label": "fraud"}}),
    ("nul", {"json": {"FIELD": "odd\x00"}}),
    ("array body", {"json": ["odd"]}),
    ("string body", {"json": "odd"}),
    ("not json", {"data": "reason=odd", "content_type": "application/json"}),
    ("form", {"data": {"FIELD": "odd"}}),
    ("no body", {}),
]


@pytest.mark.parametrize("action,field", [("escalate", "reason"), ("flag", "comment")])
@pytest.mark.parametrize("case,kwargs", BAD_BODIES, ids=[c for c, _ in BAD_BODIES])
def test_escalate_and_flag_refuse_bad_bodies_and_write_nothing(
    client, team, db, action, field, case, kwargs
):
    alice = team["alice"]
    claim = _claim(client, alice)
    kwargs = {
        k: (
            {(field if f == "FIELD" else f): v for f, v in val.items()}
            if isinstance(val, dict)
            else val
        )
        for k, val in kwargs.items()
    }
    r = client.post(f"/api/v1/claims/{claim['token']}/{action}", headers=alice["headers"], **kwargs)
    _refused(r, 422, "validation_failed")
    assert r.json["details"] and all("field" in d for d in r.json["details"])
    if case in ("missing", "empty", "number", "list", "null", "too long"):
        assert r.json["details"][0]["field"] == field
    # Nothing half-written: no event, the claim and its lease as they were.
    assert db.count(ItemEvent) == 0
    assert db.all(select(Claim.state, Claim.expires_at)) == [
        ("live", datetime.fromisoformat(claim["expires_at"]))
    ]
    assert db.scalar(
        select(Item.status).where(Item.external_id == claim["item"]["external_id"])
    ) == ("in_review")
    # The same claim still takes a good body.
    ok = client.post(f"/api/v1/claims/{claim['token']}/{action}", json={field: "odd"}, **_h(alice))
    assert ok.status_code == 200


@pytest.mark.parametrize("action,field", [("escalate", "reason"), ("flag", "comment")])
def test_escalate_and_flag_refuse_other_peoples_unknown_and_anonymous_claims(
    client, team, db, action, field
):
    alice, bob = team["alice"], team["bob"]
    claim = _claim(client, alice)
    url = f"/api/v1/claims/{claim['token']}/{action}"
    body = {field: "looks odd"}
    _refused(client.post(url, json=body, **_h(bob)), 403, "forbidden")
    _refused(client.post(f"/api/v1/claims/nope/{action}", json=body, **_h(alice)), 404)
    _refused(client.post(url, json=body), 401, "unauthorized")
    _refused(client.post(url, json=body, headers={"Authorization": "Bearer lp_nope"}), 401)
    _refused(client.post(url, json=body, headers={"Authorization": "Basic abc"}), 401)
    assert db.count(ItemEvent) == 0
    assert db.all(select(Claim.state)) == [("live",)]
    assert db.scalar(
        select(Item.status).where(Item.external_id == claim["item"]["external_id"])
    ) == ("in_review")


def test_escalate_and_flag_on_a_lost_claim_are_gone(client, team, session, db):
    alice = team["alice"]
    released = _claim(client, alice)
    assert client.delete(f"/api/v1/claims/{released['token']}", **_h(alice)).status_code == 204
    for action, field in (("escalate", "reason"), ("flag", "comment")):
        r = client.post(
            f"/api/v1/claims/{released['token']}/{action}", json={field: "odd"}, **_h(alice)
        )
        _refused(r, 410, "gone")
    expired = _claim(client, alice)
    _age(session, Claim, expires_at=utcnow() - timedelta(seconds=1))
    r = client.post(
        f"/api/v1/claims/{expired['token']}/escalate", json={"reason": "odd"}, **_h(alice)
    )
    _refused(r, 410, "gone")
    # The lapsed lease ended there and then: the item is back in the queue for anyone,
    # before the maintenance loop gets to it.
    assert db.scalar(select(Claim.state).where(Claim.token == expired["token"])) == "expired"
    back = db.scalar(select(Item).where(Item.external_id == expired["item"]["external_id"]))
    assert (back.status, back.lease_token, back.lease_owner_id) == ("pending", None, None)
    # Only the skip of the released claim was recorded; no escalation, no flag.
    assert [k for (k,) in db.all(select(ItemEvent.kind))] == ["skip"]
    assert db.count(Item, Item.status == "escalated") == 0


# --- flag -------------------------------------------------------------------------------

HOSTILE = [
    "<script>alert('x')</script><img src=x onerror=alert(1)>",
    "'; DROP TABLE item; --",
    "Robert'); DELETE FROM review WHERE ('1'='1",
    "{{ 7*7 }} {% raw %} ${7*7} %s %(x)s",
    "Zoë • naïve 東京 🧾 \u202eRTL\u202c \u200b zero-width, e\u0301 combining",
    "line one\nline two\r\n\ttabbed",
    "C:\\temp\\new \\x00 \\n written out, and a lone backslash \\",
]


def test_flag_keeps_the_claim_and_hostile_text_is_stored_verbatim(client, team, db):
    alice = team["alice"]
    claim = _claim(client, alice)
    url = f"/api/v1/claims/{claim['token']}/flag"
    for n, text in enumerate(HOSTILE, start=1):
        r = client.post(url, json={"comment": text}, **_h(alice))
        assert r.status_code == 200, r.json
        assert r.json["status"] == "in_review"
        assert r.json["flags"] == HOSTILE[:n]
    assert [c for (c,) in db.all(select(ItemEvent.comment).order_by(ItemEvent.id))] == HOSTILE
    assert db.count(Item) == 5 and db.count(Review) == 0
    # Longest allowed text is fine.
    assert client.post(url, json={"comment": "y" * 2000}, **_h(alice)).status_code == 200
    # The caller still holds the item and answers it.
    assert db.all(select(Claim.state)) == [("live",)]
    done = _decide(client, alice, claim["token"], "legit")
    assert done["status"] == "done" and done["label"]["value"] == "legit"
    # Escalation reasons are data too.
    other = _claim(client, alice)
    r = client.post(
        f"/api/v1/claims/{other['token']}/escalate", json={"reason": HOSTILE[1]}, **_h(alice)
    )
    assert r.status_code == 200 and r.json["reason"] == HOSTILE[1]
    assert db.scalar(select(ItemEvent.comment).where(ItemEvent.kind == "escalate")) == HOSTILE[1]
    assert db.count(Item) == 5


# --- heartbeat --------------------------------------------------------------------------


def test_heartbeat_extends_the_lease_by_the_queue_lease_length(client, team, session, db):
    alice = team["alice"]
    claim = _claim(client, alice)
    soon = utcnow() + timedelta(seconds=5)
    _age(session, Claim, expires_at=soon)
    session.execute(
        Item.__table__.update()
        .where(Item.lease_token == claim["token"])
        .values(lease_expires_at=soon)
    )
    session.commit()
    before = utcnow()
    r = client.post(f"/api/v1/claims/{claim['token']}/heartbeat", **_h(alice))
    after = utcnow()
    assert r.status_code == 200 and set(r.json) == {"expires_at"}
    expires = datetime.fromisoformat(r.json["expires_at"])
    assert expires.tzinfo is not None
    assert before + timedelta(seconds=120) <= expires <= after + timedelta(seconds=120)
    assert db.all(select(Claim.expires_at)) == [(expires,)]
    assert db.scalar(select(Item.lease_expires_at).where(Item.lease_token == claim["token"])) == (
        expires
    )
    # The extended claim is still the caller's to decide.
    assert _decide(client, alice, claim["token"], "fraud")["status"] == "done"


def test_heartbeat_is_gone_once_the_claim_is_lost(client, team, session, db):
    alice, bob = team["alice"], team["bob"]
    decided = _claim(client, alice)
    _decide(client, alice, decided["token"], "fraud")
    released = _claim(client, alice)
    client.delete(f"/api/v1/claims/{released['token']}", **_h(alice))
    for token in (decided["token"], released["token"]):
        _refused(client.post(f"/api/v1/claims/{token}/heartbeat", **_h(alice)), 410, "gone")
    expired = _claim(client, alice)
    past = utcnow() - timedelta(seconds=1)
    session.execute(
        Claim.__table__.update().where(Claim.token == expired["token"]).values(expires_at=past)
    )
    session.execute(
        Item.__table__.update()
        .where(Item.lease_token == expired["token"])
        .values(lease_expires_at=past)
    )
    session.commit()
    _refused(client.post(f"/api/v1/claims/{expired['token']}/heartbeat", **_h(alice)), 410)
    # Not revived: the lease stays in the past, and the item goes to the next claimer.
    assert db.scalar(select(Claim.expires_at).where(Claim.token == expired["token"])) == past
    assert bob_gets(client, bob, expired["item"]["external_id"])
    # Refusals before any lease is looked at.
    live = _claim(client, alice)
    url = f"/api/v1/claims/{live['token']}/heartbeat"
    _refused(client.post(url, **_h(bob)), 403, "forbidden")
    _refused(client.post("/api/v1/claims/unknown/heartbeat", **_h(alice)), 404, "not_found")
    _refused(client.post(url), 401, "unauthorized")
    assert db.scalar(select(Claim.expires_at).where(Claim.token == live["token"])) == (
        datetime.fromisoformat(live["expires_at"])
    )


def test_a_reviewer_removed_from_the_queue_cannot_act_on_a_claim_held_before(
    client, team, session, db
):
    alice = team["alice"]
    claim = _claim(client, alice)
    session.execute(QueueMember.__table__.delete().where(QueueMember.user_id == alice["id"]))
    session.commit()
    token = claim["token"]
    calls = [
        (f"/api/v1/claims/{token}/decision", {"label": "fraud"}),
        (f"/api/v1/claims/{token}/escalate", {"reason": "odd"}),
        (f"/api/v1/claims/{token}/flag", {"comment": "odd"}),
        (f"/api/v1/claims/{token}/heartbeat", None),
    ]
    for url, body in calls:
        r = client.post(url, json=body, **_h(alice)) if body else client.post(url, **_h(alice))
        _refused(r, 403, "forbidden")
        assert "no longer a member" in r.json["message"]
    assert db.count(Review) == 0 and db.count(ItemEvent) == 0 and db.count(Label) == 0
    # Nor can the former member claim again; the lease runs out and the item goes on.
    _refused(client.post(CLAIMS, **_h(alice)), 404, "not_found")


def bob_gets(client, bob, external_id):
    """True when bob's claims reach `external_id` before the queue runs dry."""
    while True:
        r = client.post(CLAIMS, **_h(bob))
        if r.status_code == 204:
            return False
        if r.json["claim"]["item"]["external_id"] == external_id:
            return True


# --- undo -------------------------------------------------------------------------------


def test_undo_hands_the_last_decision_back_under_a_new_claim(client, team, db, run_jobs):
    alice = team["alice"]
    first = _claim(client, alice)
    _decide(client, alice, first["token"], "legit")
    last = _claim(client, alice)
    _decide(client, alice, last["token"], "legit")
    run_jobs()
    assert db.count(TrainingExample) == 2
    r = client.post(UNDO, **_h(alice))
    assert r.status_code == 200, r.json
    back = r.json["claim"]
    assert set(back) == {"token", "expires_at", "item"} and r.json["previous_label"] == "legit"
    assert back["token"] not in (first["token"], last["token"])
    assert back["item"]["external_id"] == last["item"]["external_id"]
    assert back["item"]["status"] == "in_review" and back["item"]["label"] is None
    assert back["item"]["reviews"] == []
    assert datetime.fromisoformat(back["expires_at"]) > utcnow() + timedelta(seconds=100)
    # The decision, its label, its outbox row and its training example are gone; the first
    # decision is untouched.
    ext = last["item"]["external_id"]
    assert db.count(Review) == 1 and db.count(Label) == 1
    assert db.count(Outbox) == 1 and db.count(TrainingExample) == 1
    assert db.all(select(Item.status, Item.lease_token).where(Item.external_id == ext)) == [
        ("in_review", back["token"])
    ]
    assert db.all(select(ItemEvent.kind, ItemEvent.comment)) == [("undo", "was 'legit'")]
    # The old claim is over; the new one takes the new answer.
    old = client.post(
        f"/api/v1/claims/{last['token']}/decision", json={"label": "fraud"}, **_h(alice)
    )
    assert old.status_code == 410  # that claim ended with the undone decision
    again = _decide(client, alice, back["token"], "fraud")
    assert again["status"] == "done" and again["label"]["value"] == "fraud"
    assert db.scalar(select(Label.value).join(Item).where(Item.external_id == ext)) == "fraud"


def test_undo_refusals_leave_everything_as_it_was(client, make, session, db):
    make.queue(audit_rate=0, reviews_required=2)
    make.queue(name="other", audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    alice = make.user("reviewer", queues=["claims"], name="alice")
    bob = make.user("reviewer", queues=["claims"], name="bob")
    outsider = make.user("reviewer", queues=["other"], name="olga")
    _push(client, producer, [item("c-1"), item("c-2")])
    _refused(client.post(UNDO, **_h(alice)), 404, "not_found")  # nothing decided yet
    claim = _claim(client, alice)
    _decide(client, alice, claim["token"], "fraud")
    ext = claim["item"]["external_id"]

    def unchanged():
        assert db.all(select(Review.label, Review.user_id)) == [("fraud", alice["id"])]
        assert db.count(ItemEvent) == 0
        assert db.count(Claim, Claim.user_id == alice["id"]) == 1

    _refused(client.post(UNDO), 401, "unauthorized")
    _refused(client.post(UNDO, **_h(outsider)), 404, "not_found")  # not in the queue
    _refused(client.post("/api/v1/queues/nope/undo", **_h(alice)), 404, "not_found")
    _refused(client.post("/api/v1/queues/other/undo", **_h(alice)), 404)  # not her queue
    # Bob, the second reviewer, is looking at it right now.
    assert _claim(client, bob)["item"]["external_id"] == ext
    _refused(client.post(UNDO, **_h(alice)), 409, "conflict")
    unchanged()
    assert db.scalar(select(Item.lease_owner_id).where(Item.external_id == ext)) == bob["id"]
    # Bob lets go; past the undo window it is too late to undo (reopen still works).
    bobs = db.scalar(select(Claim.token).where(Claim.user_id == bob["id"]))
    assert client.delete(f"/api/v1/claims/{bobs}", **_h(bob)).status_code == 204
    _age(session, Review, created_at=utcnow() - UNDO_WINDOW - timedelta(seconds=1))
    r = client.post(UNDO, **_h(alice))
    _refused(r, 404, "not_found")
    assert "2 minutes" in r.json["message"]
    assert db.count(Review) == 1 and db.count(Claim, Claim.user_id == alice["id"]) == 1
    assert client.post(_reopen_url(ext), **_h(alice)).status_code == 200


# --- reopen -----------------------------------------------------------------------------


def test_reopen_own_decision_by_external_id(client, make, session, db):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    alice = make.user("reviewer", queues=["claims"], name="alice")
    bob = make.user("reviewer", queues=["claims"], name="bob")
    olga = make.user("admin", name="olga")
    ids = ["batch/7", "plain"]
    _push(client, producer, [item(i) for i in ids])
    tokens = {}
    for _ in ids:
        c = _claim(client, alice)
        tokens[c["item"]["external_id"]] = c["token"]
        _decide(client, alice, c["token"], "legit")
    # Long after the decision: undo no longer applies, reopening does.
    _age(session, Review, created_at=utcnow() - timedelta(days=3))
    _refused(client.post(UNDO, **_h(alice)), 404)

    def untouched():
        assert db.count(Review) == 2 and db.count(Label) == 2
        assert db.count(Item, Item.status == "done") == 2

    _refused(client.post(_reopen_url("batch/7"), **_h(bob)), 404, "not_found")  # not his
    _refused(client.post(_reopen_url("batch/7"), **_h(olga)), 404)  # admin, no decision
    _refused(client.post(_reopen_url("missing"), **_h(alice)), 404)
    _refused(client.post("/api/v1/queues/nope/items/plain/reopen", **_h(alice)), 404)
    _refused(client.post(_reopen_url("plain")), 401, "unauthorized")
    untouched()
    assert db.count(ItemEvent) == 0

    r = client.post(_reopen_url("batch/7"), **_h(alice))
    assert r.status_code == 200, r.json
    back = r.json["claim"]
    assert back["item"]["external_id"] == "batch/7" and back["item"]["status"] == "in_review"
    assert back["token"] != tokens["batch/7"] and r.json["previous_label"] == "legit"
    assert db.count(Review) == 1 and db.count(Label) == 1
    assert db.all(select(ItemEvent.kind, ItemEvent.comment)) == [("reopen", "was 'legit'")]
    # Reopened and not yet answered: someone (the caller) is reviewing it, and there is no
    # decision of hers left on it.
    _refused(client.post(_reopen_url("batch/7"), **_h(alice)), 404)
    assert _decide(client, alice, back["token"], "duplicate")["label"]["value"] == "duplicate"
    # The GET route on the same prefix still answers for the item itself.
    got = client.get("/api/v1/queues/claims/items/batch/7", **_h(alice))
    assert got.status_code == 200 and got.json["label"]["value"] == "duplicate"


def test_undo_and_reopen_are_refused_once_a_model_trained_on_the_label(
    client, make, session, db, run_jobs
):
    make.queue(audit_rate=0, retrain_after=0)
    producer = make.user("scientist", queues=["claims"])
    alice = make.user("reviewer", queues=["claims"], name="alice")
    _push(client, producer, [item(f"t-{i}") for i in range(12)])
    last = None
    for n in range(12):
        last = _claim(client, alice)
        _decide(client, alice, last["token"], "legit" if n % 2 else "fraud")
    run_jobs()
    assert db.count(TrainingExample) == 12
    version = train_model_version(
        db=session, queue_id=get_queue(session=session, name="claims").id
    ).version
    assert version is not None
    session.commit()
    assert db.count(TrainingExample, TrainingExample.used_by_version_id.is_(None)) == 0
    ext = last["item"]["external_id"]
    r = client.post(UNDO, **_h(alice))
    _refused(r, 409, "conflict")
    assert "train" in r.json["message"]
    _refused(client.post(_reopen_url(ext), **_h(alice)), 409, "conflict")
    _refused(client.post(_reopen_url("t-0"), **_h(alice)), 409, "conflict")
    assert db.count(Review) == 12 and db.count(Label) == 12 and db.count(TrainingExample) == 12
    assert db.count(ItemEvent) == 0 and db.count(ModelVersion) == 1
    assert db.count(Item, Item.status == "done") == 12
    assert db.count(Claim, Claim.state == "live") == 0


# --- all of them together ---------------------------------------------------------------


def test_a_review_session_mixing_every_action(client, team, session, db):
    alice = team["alice"]
    claim = _claim(client, alice)
    ext = claim["item"]["external_id"]
    token = claim["token"]
    assert client.post(
        f"/api/v1/claims/{token}/flag", json={"comment": "odd IBAN"}, **_h(alice)
    ).json["flags"] == ["odd IBAN"]
    beat = client.post(f"/api/v1/claims/{token}/heartbeat", **_h(alice))
    assert beat.status_code == 200
    assert _decide(client, alice, token, "legit")["status"] == "done"
    # Undo: the same item, a new claim; the old token is finished.
    back = client.post(UNDO, **_h(alice)).json["claim"]
    assert back["item"]["external_id"] == ext
    _refused(client.post(f"/api/v1/claims/{token}/heartbeat", **_h(alice)), 410)
    new = back["token"]
    assert client.post(f"/api/v1/claims/{new}/heartbeat", **_h(alice)).status_code == 200
    flagged = client.post(f"/api/v1/claims/{new}/flag", json={"comment": "still odd"}, **_h(alice))
    assert flagged.json["flags"] == ["odd IBAN", "still odd"]
    assert _decide(client, alice, new, "fraud")["label"]["value"] == "fraud"
    # Much later: undo has expired, reopening does not depend on the window.
    _age(session, Review, created_at=utcnow() - timedelta(hours=1))
    _refused(client.post(UNDO, **_h(alice)), 404)
    reopened = client.post(_reopen_url(ext), **_h(alice))
    assert reopened.status_code == 200 and reopened.json["previous_label"] == "fraud"
    third = reopened.json["claim"]["token"]
    escalated = client.post(
        f"/api/v1/claims/{third}/escalate", json={"reason": "needs a lead"}, **_h(alice)
    )
    assert escalated.status_code == 200 and escalated.json["status"] == "escalated"
    # Escalating settled nothing: no decision of hers remains, so nothing to reopen or undo.
    _refused(client.post(_reopen_url(ext), **_h(alice)), 404)
    _refused(client.post(UNDO, **_h(alice)), 404)
    assert db.count(Review) == 0 and db.count(Label) == 0
    kinds = [k for (k,) in db.all(select(ItemEvent.kind).order_by(ItemEvent.id))]
    assert kinds == ["flag", "undo", "flag", "reopen", "escalate"]
    assert db.all(select(Claim.token, Claim.state).order_by(Claim.id)) == [
        (token, "decided"),
        (new, "decided"),
        (third, "escalated"),
    ]


# --- the OpenAPI document ---------------------------------------------------------------


def test_openapi_lists_the_review_actions_with_their_bodies(client):
    spec = client.get("/api/openapi.json").json
    paths = spec["paths"]
    schemas = spec["components"]["schemas"]

    def body_of(path):
        ref = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        return schemas[ref.rsplit("/", 1)[1]]

    escalate = body_of("/api/v1/claims/{token}/escalate")
    assert escalate["required"] == ["reason"]
    assert escalate["properties"]["reason"]["maxLength"] == 2000
    flag = body_of("/api/v1/claims/{token}/flag")
    assert flag["required"] == ["comment"] and flag["properties"]["comment"]["minLength"] == 1
    heartbeat = paths["/api/v1/claims/{token}/heartbeat"]["post"]
    assert {"200", "410"} <= set(heartbeat["responses"])
    ok = heartbeat["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert "expires_at" in schemas[ok.rsplit("/", 1)[1]]["properties"]
    for path in ("/api/v1/queues/{name}/undo", "/api/v1/queues/{name}/items/{external_id}/reopen"):
        assert {"200", "404", "409"} <= set(paths[path]["post"]["responses"])
    for path in ("/api/v1/claims/{token}/escalate", "/api/v1/claims/{token}/flag"):
        assert {"200", "403", "404", "410", "422"} <= set(paths[path]["post"]["responses"])
