"""An alarm that acts: audits showing bad precision raise it, auto-accept pauses (new items
go to people with the reason), the API, /metrics and the pages show it, and only a lead
resumes it; every step is an event with who, when and why."""

import re

import pytest
from sqlalchemy import select

from app.api.schemas import QualityOut
from app.db import session_scope
from app.learning.drift import drift_alarm
from app.models import AuditFrame, Item, Queue, QueueEvent
from app.states import QueueEventKind
from app.trust.alarms import (
    CHECKS,
    INPUT_DRIFT,
    PRECISION_BELOW_TARGET,
    check_queue,
    register,
)
from tests.conftest import item, wait_for
from tests.review.test_review_pages import login

ITEMS = "/api/v1/queues/claims/items"
QUALITY = "/api/v1/queues/claims/quality"
RESUME = "/api/v1/queues/claims/auto-accept/resume"
POLICY = "/api/v1/queues/claims/policy"


def _push(client, who, items):
    r = client.post(ITEMS, json={"items": items}, headers=who["headers"])
    assert r.status_code == 200, r.json
    return r.json


def _answer(client, reviewer, label):
    claim = client.post("/api/v1/queues/claims/claims", headers=reviewer["headers"]).json["claim"]
    r = client.post(
        f"/api/v1/claims/{claim['token']}/decision",
        json={"label": label},
        headers=reviewer["headers"],
    )
    assert r.status_code == 200, r.json
    return claim["item"]["external_id"]


def _events(db):
    return db.all(
        select(QueueEvent.kind, QueueEvent.alarm, QueueEvent.user_id, QueueEvent.reason).order_by(
            QueueEvent.id
        )
    )


def _metric(text: str, name: str, **labels) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    match = re.search(rf"^{name}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def test_bad_audits_raise_the_alarm_pause_auto_accept_until_a_lead_resumes(client, make, db):
    make.queue(audit_rate=1.0, target_precision=0.9, alarm_min_audits=10)
    producer = make.user("scientist", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    lead = make.user("lead", queues=["claims"])
    # Twelve items the model would auto-accept ("fraud", 0.97); at a 100% audit rate each
    # goes to a person, who says "fraud" for six and "legit" for the rest.
    _push(client, producer, [item(f"a-{i:02d}", "fraud", 0.97) for i in range(12)])
    assert db.count(AuditFrame, AuditFrame.to_person) == 12
    quiet = client.get(QUALITY, headers=reviewer["headers"]).json
    assert quiet["alarms"] == [] and quiet["auto_accept"]["paused"] is False
    assert quiet["auto_accept"]["precision"]["n"] == 0

    for n in range(1, 13):
        _answer(client, reviewer, "fraud" if n <= 6 else "legit")
        body = client.get(QUALITY, headers=reviewer["headers"]).json
        # Below alarm_min_audits answers a bad bound proves nothing yet.
        assert bool(body["alarms"]) == (n >= 10), n
        QualityOut.model_validate(body)  # the shape the OpenAPI document declares
        if n == 10:
            precision = body["auto_accept"]["precision"]
            assert precision["n"] == 10 and precision["estimate"] == 0.6
            assert precision["lower"] < 0.9 and precision["method"] == "clopper-pearson"
    alarm = body["alarms"][0]
    assert alarm["kind"] == "precision_below_target" and alarm["since"]
    assert "below the target 0.900" in alarm["detail"] and alarm["paused"] is True
    auto = body["auto_accept"]
    assert auto["paused"] is True and auto["target_precision"] == 0.9
    assert auto["precision"]["n"] == 12 and auto["precision"]["estimate"] == 0.5
    assert auto["by_answer"]["fraud"]["n"] == 12
    assert [b["band"] for b in auto["by_band"]] == ["0.95-0.98"]
    assert auto["expected_share"] is None  # no model version has learned one

    text = client.get("/metrics").data.decode()
    assert _metric(text, "loupe_queue_alarm", queue="claims", kind="precision_below_target") == 1
    assert _metric(text, "loupe_auto_accept_paused", queue="claims") == 1
    assert _metric(text, "loupe_auto_accept_precision_lower", queue="claims") == pytest.approx(
        auto["precision"]["lower"]
    )
    assert _metric(text, "loupe_auto_accept_audits", queue="claims") == 12

    # Paused: items the model would auto-accept go to people, saying why; the others route
    # as always.
    assert client.patch(POLICY, json={"audit_rate": 0}, headers=lead["headers"]).status_code == 200
    routed = _push(client, producer, [item("p-1", "fraud", 0.97), item("p-2", "fraud", 0.5)])
    assert routed["routed"] == {"review": 2, "auto_accepted": 0, "audit": 0}
    held = client.get(f"{ITEMS}/p-1", headers=producer["headers"]).json
    assert held["status"] == "pending" and held["route"]["decision"] == "review"
    assert held["route"]["reason"].startswith("auto-accept paused: audited precision")
    assert "a lead must resume it" in held["route"]["reason"]
    other = client.get(f"{ITEMS}/p-2", headers=producer["headers"]).json["route"]["reason"]
    assert other.startswith("top score 0.50 is below the auto-accept threshold")
    # While paused, every item auto-accept was eligible for reaches a person: chance 1.
    assert db.all(
        select(AuditFrame.sample_rate, AuditFrame.to_person)
        .join(Item)
        .where(Item.external_id == "p-1")
    ) == [(1.0, True)]

    # A reviewer may not resume; a lead must say why.
    assert client.post(RESUME, json={"reason": "x"}, headers=reviewer["headers"]).status_code == 403
    assert client.post(RESUME, json={}, headers=lead["headers"]).status_code == 422
    assert client.get(QUALITY, headers=lead["headers"]).json["auto_accept"]["paused"] is True
    r = client.post(
        RESUME, json={"reason": "retrained; audits of the new model look right"}, **_h(lead)
    )
    assert r.status_code == 200 and r.json["paused"] is False
    assert r.json["resumed_by"] == lead["name"]
    assert r.json["was_paused_because"].startswith("audited precision")
    assert client.post(RESUME, json={"reason": "again"}, **_h(lead)).status_code == 409

    after = client.get(QUALITY, headers=reviewer["headers"]).json
    # The alarm stays shown until audits clear it, but no longer holds auto-accept.
    assert after["auto_accept"]["paused"] is False
    assert [a["kind"] for a in after["alarms"]] == ["precision_below_target"]
    assert after["alarms"][0]["paused"] is False
    assert _push(client, producer, [item("r-1", "fraud", 0.97)])["routed"]["auto_accepted"] == 1
    assert (
        _metric(client.get("/metrics").data.decode(), "loupe_auto_accept_paused", queue="claims")
        == 0
    )

    events = _events(db)
    assert [(k, a) for k, a, _, _ in events] == [
        ("alarm_raised", "precision_below_target"),
        ("auto_accept_paused", "precision_below_target"),
        ("auto_accept_resumed", "precision_below_target"),
    ]
    assert [u for _, _, u, _ in events] == [None, None, lead["id"]]
    assert events[2][3] == "retrained; audits of the new model look right"


def _h(user):
    return {"headers": user["headers"]}


def test_the_pages_show_the_alarm_and_only_a_lead_gets_the_resume_button(client, make, engine):
    make.queue(audit_rate=1.0, alarm_min_audits=3)
    producer = make.user("scientist", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    lead = make.user("lead", queues=["claims"])
    _push(client, producer, [item(f"a-{i}", "fraud", 0.97) for i in range(6)])
    for _ in range(3):
        _answer(client, reviewer, "legit")
    _push(client, producer, [item("z-1", "fraud", 0.5)])

    login(client, reviewer)
    review = client.get("/queues/claims/review").data.decode()
    assert 'data-kind="precision_below_target"' in review
    assert "Auto-accept is paused" in review and "Resume auto-accept" not in review
    assert "auto-accept paused" in client.get("/queues").data.decode()
    quality = client.get("/queues/claims/quality").data.decode()
    assert "Audited precision: 0.000" in quality and "n = 3" in quality
    assert "audits a week" in quality
    # A reviewer's form post is refused too.
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', quality).group(1)
    refused = client.post(
        "/queues/claims/auto-accept/resume", data={"reason": "x", "csrf_token": csrf}
    )
    assert refused.status_code == 403
    client.post("/logout", data={"csrf_token": csrf})

    csrf = login(client, lead)
    page = client.get("/queues/claims/quality").data.decode()
    assert "Resume auto-accept" in page
    empty = client.post(
        "/queues/claims/auto-accept/resume", data={"reason": "  ", "csrf_token": csrf}
    )
    assert empty.status_code == 303
    assert "paused" in client.get("/queues/claims/quality").data.decode()
    done = client.post(
        "/queues/claims/auto-accept/resume",
        data={"reason": "checked by hand", "csrf_token": csrf, "back": "review"},
    )
    assert done.status_code == 303 and done.headers["Location"].endswith("/queues/claims/review")
    page = client.get("/queues/claims/quality").data.decode()
    assert "Auto-accept is on." in page and "checked by hand" in page
    with session_scope(engine, write=False) as s:
        last = s.scalar(select(QueueEvent).order_by(QueueEvent.id.desc()))
        assert last.kind == QueueEventKind.AUTO_ACCEPT_RESUMED and last.user_id == lead["id"]


def test_a_maintenance_loop_in_a_real_worker_raises_and_clears_the_alarm(
    client, make, db, worker_process, monkeypatch
):
    """No answer disagrees, so only the periodic check can see that a stricter target is
    missed; it raises the alarm (and pauses), then clears it when the target is lowered; the
    pause stays until a lead resumes."""
    monkeypatch.setenv("LOUPE_ALARM_CHECK_INTERVAL", "0")
    make.queue(audit_rate=1.0, alarm_min_audits=5)
    producer = make.user("scientist", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    lead = make.user("lead", queues=["claims"])
    _push(client, producer, [item(f"a-{i:02d}", "fraud", 0.97) for i in range(30)])
    for _ in range(30):
        _answer(client, reviewer, "fraud")
    # 30 of 30 right: at least 0.1 ** (1 / 30) = 0.926 with 90% confidence (Clopper-Pearson),
    # above the implied target 0.90.
    body = client.get(QUALITY, headers=lead["headers"]).json
    assert body["alarms"] == [] and body["auto_accept"]["alarm_target"] == 0.9
    assert body["auto_accept"]["precision"]["lower"] == pytest.approx(0.1 ** (1 / 30), abs=1e-4)

    client.patch(POLICY, json={"target_precision": 0.99}, headers=lead["headers"])
    worker_process()
    raised = wait_for(
        lambda: client.get(QUALITY, headers=lead["headers"]).json["alarms"],
        timeout=120,  # the worker's start: seconds of imports on a busy machine
        what="the worker's maintenance to raise the alarm",
    )
    assert raised[0]["kind"] == "precision_below_target"
    assert client.get(QUALITY, headers=lead["headers"]).json["auto_accept"]["paused"] is True

    client.patch(POLICY, json={"target_precision": 0.9}, headers=lead["headers"])
    wait_for(
        lambda: client.get(QUALITY, headers=lead["headers"]).json["alarms"] == [],
        timeout=120,
        what="the worker's maintenance to clear the alarm",
    )
    assert client.get(QUALITY, headers=lead["headers"]).json["auto_accept"]["paused"] is True
    assert [k for k, _, _, _ in _events(db)] == [
        "alarm_raised",
        "auto_accept_paused",
        "alarm_cleared",
    ]


def test_without_pause_on_alarm_the_alarm_only_warns(client, make, engine):
    make.queue(audit_rate=1.0, alarm_min_audits=3, pause_on_alarm=False)
    producer = make.user("scientist", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    _push(client, producer, [item(f"a-{i}", "fraud", 0.97) for i in range(4)])
    for _ in range(3):
        _answer(client, reviewer, "legit")
    body = client.get(QUALITY, headers=reviewer["headers"]).json
    assert [a["kind"] for a in body["alarms"]] == ["precision_below_target"]
    assert body["auto_accept"]["paused"] is False


def test_another_check_is_one_registered_function(client, make, engine, monkeypatch):
    """Any other check is added by name; it raises and clears the same way."""
    make.queue()
    verdict = {"reason": "labels arrive late: 40% after 24 h"}
    # The registry is the module's own dict: restored after the test, the real checks intact.
    monkeypatch.setattr("app.trust.alarms.CHECKS", dict(CHECKS))
    register("late_labels", lambda session, queue: verdict["reason"])
    with session_scope(engine) as s:
        queue = s.scalar(select(Queue))
        changes = check_queue(session=s, queue=queue, kinds=["late_labels"])
    assert ("late_labels", QueueEventKind.ALARM_RAISED) in changes
    assert ("late_labels", QueueEventKind.AUTO_ACCEPT_PAUSED) in changes
    with session_scope(engine) as s:
        assert check_queue(session=s, queue=s.scalar(select(Queue)), kinds=["late_labels"]) == []
    verdict["reason"] = None
    with session_scope(engine) as s:
        changes = check_queue(session=s, queue=s.scalar(select(Queue)), kinds=["late_labels"])
    assert changes == [("late_labels", QueueEventKind.ALARM_CLEARED)]


def test_the_drift_guard_is_a_registered_check():
    assert CHECKS[INPUT_DRIFT] is drift_alarm and PRECISION_BELOW_TARGET in CHECKS


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reason": ""},
        {"reason": "   "},
        {"reason": 42},
        {"reason": None},
        {"reason": "x" * 2001},
        {"reason": "ok", "force": True},
        ["reason"],
    ],
)
def test_resume_refuses_bad_bodies(client, make, db, body):
    make.queue()
    lead = make.user("lead", queues=["claims"])
    r = client.post(RESUME, json=body, headers=lead["headers"])
    assert r.status_code == 422 and r.json["error"] == "validation_failed"
    assert db.count(QueueEvent) == 0


def test_resume_needs_a_member_with_a_token(client, make):
    make.queue()
    outsider = make.user("lead")
    assert client.post(RESUME, json={"reason": "x"}).status_code == 401
    assert client.post(RESUME, json={"reason": "x"}, headers=outsider["headers"]).status_code == 404
    lead = make.user("lead", queues=["claims"])
    r = client.post(RESUME, json={"reason": "nothing to resume"}, headers=lead["headers"])
    assert r.status_code == 409


@pytest.mark.parametrize(
    "change",
    [
        {"target_precision": 1.5},
        {"target_precision": 0.3},
        {"target_precision": 1.0},
        {"target_precision": "high"},
        {"confidence": 1.0},
        {"confidence": 0.1},
        {"confidence": [0.9]},
        {"pause_on_alarm": "maybe"},
        {"pause_on_alarm": None},
        {"alarm_min_audits": 0},
        {"alarm_min_audits": -5},
        {"alarm_min_audits": 10**12},
        {"alarm_min_audits": 2.5},
    ],
)
def test_bad_alarm_policy_fields_are_refused_and_change_nothing(client, make, change):
    make.queue()
    lead = make.user("lead", queues=["claims"])
    before = client.get("/api/v1/queues/claims", headers=lead["headers"]).json["policy"]
    r = client.patch(POLICY, json=change, headers=lead["headers"])
    assert r.status_code == 422
    field = next(iter(change))
    assert any(d["field"].startswith(f"policy.{field}") for d in r.json["details"]), r.json
    assert client.get("/api/v1/queues/claims", headers=lead["headers"]).json["policy"] == before
    assert before["confidence"] == 0.9 and before["pause_on_alarm"] is True
