"""The policy page and its API: every Policy field in a form, one validation path with the
API's PATCH (errors next to the field, nothing half-saved), a preview of a change on recent
items, and every change recorded with who, when, before and after."""

import re

import pytest
from rq import Queue as RQQueue
from sqlalchemy import select

from app.db import session_scope
from app.learning.job_queues import TRAINING_QUEUE
from app.models import PolicyChange, Queue
from app.policy.form import policy_fields
from app.policy.preview import preview_policy
from app.queues.policy_changes import change_policy, diff_policies
from app.queues.service import Policy, get_queue
from tests.conftest import item
from tests.review.test_review_pages import login

PATCH = "/api/v1/queues/claims/policy"
CHANGES = "/api/v1/queues/claims/policy/changes"
PREVIEW = "/api/v1/queues/claims/policy/preview"
PAGE = "/queues/claims/policy"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def _policy(db):
    return db.scalar(select(Queue.policy).where(Queue.name == "claims"))


def _changes(db):
    return db.count(PolicyChange)


@pytest.fixture
def queue_with_items(client, make):
    """A queue whose 20 recent items score 0.55 to 0.93 on a producer's predictions."""
    make.queue(audit_rate=0, auto_accept_threshold=0.99)
    producer = make.user("scientist", queues=["claims"])
    items = [item(f"p-{i}", "fraud", round(0.55 + i * 0.02, 2)) for i in range(20)]
    r = client.post(
        "/api/v1/queues/claims/items", json={"items": items}, headers=producer["headers"]
    )
    assert r.status_code == 200 and r.json["routed"]["review"] == 20, r.json
    return producer


def test_an_api_change_is_recorded_with_who_when_before_and_after(client, make, db):
    make.queue()
    lead = make.user("lead", queues=["claims"], name="lena")
    r = client.patch(PATCH, json={"sla_hours": 8, "audit_rate": 0.1}, headers=lead["headers"])
    assert r.status_code == 200 and r.json["policy"]["sla_hours"] == 8
    # The same values again change nothing and record nothing.
    assert client.patch(PATCH, json={"sla_hours": 8}, headers=lead["headers"]).status_code == 200
    body = client.get(CHANGES, headers=lead["headers"]).json
    assert len(body["changes"]) == 1
    change = body["changes"][0]
    assert change["by"] == "lena" and change["via"] == "api" and change["at"]
    assert change["changes"] == {
        "sla_hours": {"before": None, "after": 8.0},
        "audit_rate": {"before": 0.05, "after": 0.1},
    }


BAD = [
    ({"audit_rate": "lots"}, "policy.audit_rate"),  # wrong type
    ({"audit_rate": 1.5}, "policy.audit_rate"),  # out of range
    ({"sla_hours": 0}, "policy.sla_hours"),  # must be positive
    ({"sla_hours": -3}, "policy.sla_hours"),
    ({"reviews_required": 2.5}, "policy.reviews_required"),
    ({"order": "<script>alert(1)</script>"}, "policy.order"),  # hostile string
    ({"colour": "red"}, "policy.colour"),  # unknown field
    (
        {"rules": [{"name": "r", "field": "x", "op": ">", "value": 1, "label": "nope"}]},
        "policy.rules.0.label",
    ),
]


@pytest.mark.parametrize(("body", "field"), BAD, ids=[f for _, f in BAD])
def test_bad_api_input_leaves_the_policy_unchanged(client, make, db, body, field):
    make.queue()
    lead = make.user("lead", queues=["claims"])
    before = _policy(db)
    # A valid field next to the bad one is not saved either: all or nothing.
    r = client.patch(PATCH, json={"min_margin": 0.3, **body}, headers=lead["headers"])
    assert r.status_code == 422, r.json
    assert field in [d["field"] for d in r.json["details"]]
    assert _policy(db) == before and _changes(db) == 0
    r = client.post(PREVIEW, json=body, headers=lead["headers"])
    assert r.status_code == 422 and field in [d["field"] for d in r.json["details"]]


def test_non_json_and_nan_bodies_are_refused(client, make, db):
    make.queue()
    lead = make.user("lead", queues=["claims"])
    before = _policy(db)
    for data in ("[1, 2]", '{"sla_hours": NaN}', "not json"):
        r = client.patch(
            PATCH, data=data, headers={**lead["headers"], "Content-Type": "application/json"}
        )
        assert r.status_code == 422, data
    assert _policy(db) == before and _changes(db) == 0


def test_who_may_change_read_and_preview_the_policy(client, make, db):
    make.queue()
    make.queue(name="other")
    reviewer = make.user("reviewer", queues=["claims"])
    stranger = make.user("lead", queues=["other"])
    scientist = make.user("scientist", queues=["claims"])
    before = _policy(db)
    for user, status in ((reviewer, 403), (stranger, 404)):
        assert (
            client.patch(PATCH, json={"sla_hours": 2}, headers=user["headers"]).status_code
            == status
        )
        assert client.get(CHANGES, headers=user["headers"]).status_code == status
        assert (
            client.post(PREVIEW, json={"sla_hours": 2}, headers=user["headers"]).status_code
            == status
        )
    assert _policy(db) == before and _changes(db) == 0
    # Scientists configure too (app.auth.service PERMISSIONS["configure"]).
    assert (
        client.patch(PATCH, json={"sla_hours": 2}, headers=scientist["headers"]).status_code == 200
    )


def test_preview_shows_the_auto_accept_share_and_review_load_without_saving(
    client, make, db, queue_with_items
):
    lead = make.user("lead", queues=["claims"])
    before = _policy(db)
    r = client.post(
        PREVIEW,
        json={"auto_accept_threshold": 0.8, "min_margin": 0, "reviews_required": 2},
        headers=lead["headers"],
    )
    assert r.status_code == 200, r.json
    p = r.json
    assert p["items"] == 20
    assert sorted(p["changed"]) == ["auto_accept_threshold", "min_margin", "reviews_required"]
    assert p["current"]["auto_accept_share"] == 0 and p["current"]["reviews_per_100_items"] == 100
    # Scores 0.81 ... 0.93 clear 0.8: 7 of 20 would be auto-accepted, the other 13 reviewed
    # twice each.
    assert p["proposed"]["auto_accept_share"] == pytest.approx(7 / 20)
    assert p["proposed"]["reviews_per_100_items"] == pytest.approx(100 * 13 * 2 / 20)
    assert _policy(db) == before and _changes(db) == 0


def test_preview_counts_waiting_items_late_under_a_proposed_sla(
    client, make, engine, queue_with_items
):
    from datetime import timedelta

    from sqlalchemy import update

    from app.models import Item, utcnow

    with session_scope(engine) as s:
        s.execute(
            update(Item)
            .where(Item.external_id.in_(["p-0", "p-1"]))
            .values(created_at=utcnow() - timedelta(hours=5))
        )
        s.execute(
            update(Item)
            .where(Item.external_id == "p-2")
            .values(created_at=utcnow() - timedelta(hours=3.5))
        )
        queue = get_queue(session=s, name="claims")
        p = preview_policy(session=s, queue=queue, changes={"sla_hours": 4})
    assert p["current"]["waiting_late"] is None
    assert p["proposed"]["waiting_late"] == 2 and p["proposed"]["nearing"] == 3


def test_domain_change_policy_is_all_or_nothing(make, engine):
    make.queue()
    with session_scope(engine) as s:
        queue = get_queue(session=s, name="claims")
        policy, before, record = change_policy(
            session=s, queue=queue, user=None, changes={"order": "uncertainty"}, via="api"
        )
        assert policy.order == "uncertainty" and before["order"] == "arrival"
        assert record is not None and record.changes == {
            "order": {"before": "arrival", "after": "uncertainty"}
        }
    assert diff_policies({"a": 1, "b": 2}, {"a": 1, "b": 3}) == {"b": {"before": 2, "after": 3}}


# The page


def _form(page_html: str) -> dict:
    """The policy form's fields as the page shows them (a switch's last value wins)."""
    data = {}
    for tag, name, value in re.findall(r'<input([^>]*)name="(\w+)" value="([^"]*)"', page_html):
        if 'type="checkbox"' not in tag:
            data[name] = value
    for name, body in re.findall(r'<textarea[^>]*name="(\w+)"[^>]*>([^<]*)</textarea>', page_html):
        data[name] = body
    for name, body in re.findall(r'<select[^>]*name="(\w+)"[^>]*>(.*?)</select>', page_html, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', body)
        data[name] = chosen.group(1) if chosen else ""
    # Unticked switches post only their hidden "false".
    for name in re.findall(r'type="checkbox"[^>]*name="(\w+)" value="true" checked', page_html):
        data[name] = "true"
    return data


def test_the_page_renders_every_policy_field_from_the_model(client, make):
    make.queue(sla_hours=6)
    lead = make.user("lead", queues=["claims"])
    login(client, lead)
    page = client.get(PAGE)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for name in Policy.model_fields:
        assert f'id="field-{name}"' in html, name
    assert '<option value="uncertainty">' in html  # choices come from the Literal
    assert "A number, more than 0 and at most 8,784." in html  # sla_hours' bounds
    fields = {f.name: f for f in policy_fields(Policy(sla_hours=6))}
    assert fields["sla_hours"].optional and fields["sla_hours"].value == "6.0"
    assert fields["rules"].kind == "json" and fields["train_on_auto"].kind == "switch"
    assert fields["reviews_required"].kind == "integer" and fields["order"].kind == "choice"


def test_fields_other_branches_add_render_from_their_types():
    """A field added to Policy needs no change to the form: its type picks the input."""
    from enum import StrEnum
    from typing import Literal

    from pydantic import Field, create_model

    from app.policy import form

    class Rule(StrEnum):
        MAJORITY = "majority"
        UNANIMOUS = "unanimous"

    wider = create_model(
        "Wider",
        __base__=Policy,
        consensus=(Rule, Rule.MAJORITY),
        gold_rate=(float, Field(0.0, ge=0, le=0.5)),
        mode=(Literal["a", "b"] | None, None),
        second_review=(dict | None, None),
    )
    fields = {f.name: f for f in form.policy_fields(wider())}
    assert fields["consensus"].kind == "choice"
    assert fields["consensus"].choices == ["majority", "unanimous"]
    assert fields["consensus"].value == "majority"
    assert fields["gold_rate"].kind == "number" and fields["gold_rate"].high == 0.5
    assert fields["mode"].kind == "choice" and fields["mode"].optional
    assert fields["second_review"].kind == "json" and fields["second_review"].optional


def test_the_page_saves_through_the_same_validation_and_records_the_change(client, make, db):
    make.queue()
    lead = make.user("lead", queues=["claims"], name="lena")
    csrf = login(client, lead)
    data = _form(client.get(PAGE).get_data(as_text=True))
    assert data["sla_hours"] == "" and data["order"] == "arrival"
    r = client.post(
        PAGE, data={**data, "sla_hours": "12", "order": "uncertainty", "csrf_token": csrf}
    )
    assert r.status_code == 303
    policy = _policy(db)
    assert policy["sla_hours"] == 12 and policy["order"] == "uncertainty"
    page = client.get(PAGE).get_data(as_text=True)
    assert "Policy saved: order, sla_hours." in page
    assert "by lena (policy page)" in page and "arrival → uncertainty" in page
    # The unchanged form saves nothing new.
    data = _form(page)
    assert client.post(PAGE, data={**data, "csrf_token": csrf}).status_code == 303
    assert _changes(db) == 1
    assert client.get(CHANGES, headers=lead["headers"]).json["changes"][0]["via"] == "page"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("audit_rate", "lots", "valid number"),
        ("audit_rate", "2", "less than or equal to 1"),
        ("sla_hours", "-1", "greater than 0"),
        ("reviews_required", "1.5", "valid integer"),
        ("order", "<script>x</script>", "Input should be"),
        ("rules", "[{broken", "not valid JSON"),
        (
            "rules",
            '[{"name": "r", "field": "x", "op": ">", "value": NaN, "label": "fraud"}]',
            "finite",
        ),
        ("features", '[{"name": "x", "kind": "colour"}]', "Input should be"),
    ],
)
def test_bad_form_input_is_shown_next_to_its_field_and_nothing_is_saved(
    client, make, db, field, value, message
):
    make.queue()
    lead = make.user("lead", queues=["claims"])
    csrf = login(client, lead)
    before = _policy(db)
    data = _form(client.get(PAGE).get_data(as_text=True))
    # A good change next to the bad one is not saved either.
    r = client.post(PAGE, data={**data, "min_margin": "0.3", field: value, "csrf_token": csrf})
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    error = re.search(rf'<small class="field-error" id="error-{field}">([^<]*)</small>', html)
    assert error and message in error.group(1), html[:200]
    assert "<script>x</script>" not in html  # typed text comes back escaped
    assert "Nothing was saved" in html
    assert _policy(db) == before and _changes(db) == 0


def test_page_access_reviewer_403_other_queue_404_and_csrf(client, make, db):
    make.queue()
    make.queue(name="other")
    reviewer = make.user("reviewer", queues=["claims"])
    stranger = make.user("lead", queues=["other"])
    lead = make.user("lead", queues=["claims"])
    csrf = login(client, reviewer)
    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, data={"sla_hours": "1", "csrf_token": csrf}).status_code == 403
    client.post("/logout", data={"csrf_token": csrf})
    csrf = login(client, stranger)
    assert client.get(PAGE).status_code == 404
    assert client.post(PAGE, data={"sla_hours": "1", "csrf_token": csrf}).status_code == 404
    client.post("/logout", data={"csrf_token": csrf})
    login(client, lead)
    assert client.post(PAGE, data={"sla_hours": "1"}).status_code == 400  # no CSRF token
    assert _changes(db) == 0 and _policy(db).get("sla_hours") is None


def test_a_page_change_that_affects_training_starts_a_retrain(client, make, db, redis):
    queue_id = make.queue()
    lead = make.user("lead", queues=["claims"])
    csrf = login(client, lead)
    data = _form(client.get(PAGE).get_data(as_text=True))
    r = client.post(PAGE, data={**data, "coverage": "0.9", "csrf_token": csrf})
    assert r.status_code == 303
    assert "A retraining run started (coverage changed)." in client.get(PAGE).get_data(as_text=True)
    assert RQQueue(TRAINING_QUEUE, connection=redis).job_ids == [f"retrain-q{queue_id}"]


def test_the_preview_fragment(client, make, queue_with_items):
    lead = make.user("lead", queues=["claims"])
    csrf = login(client, lead)
    data = _form(client.get(PAGE).get_data(as_text=True))
    r = client.post(
        PAGE + "/preview",
        data={**data, "auto_accept_threshold": "0.8", "min_margin": "0"},
        headers={"HX-Request": "true", "X-CSRFToken": csrf},
    )
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "auto-accept would take <strong>35%</strong> (now 0%)" in html
    r = client.post(
        PAGE + "/preview",
        data={**data, "audit_rate": "nope"},
        headers={"HX-Request": "true", "X-CSRFToken": csrf},
    )
    assert "would not be saved" in r.get_data(as_text=True)


def test_the_new_endpoints_are_in_the_openapi_document(client):
    paths = client.get("/api/openapi.json").json["paths"]

    def schema(path, method, status="200"):
        content = paths[path][method]["responses"][status]["content"]["application/json"]
        return content["schema"]["$ref"].split("/")[-1].split(".")[0]

    assert schema("/api/v1/queues/{name}/sla", "get") == "SlaOut"
    assert schema("/api/v1/queues/{name}/policy/changes", "get") == "PolicyChangesOut"
    assert schema("/api/v1/queues/{name}/policy/preview", "post") == "PolicyPreviewOut"
    body = paths["/api/v1/queues/{name}/policy/preview"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["$ref"].split("/")[-1].startswith("Policy")
