"""What every v1 endpoint shares: the caller from the bearer token (401), the queue it names
(404 to a non-member), the role it needs (403), the body checked against its declared model
(422 in API.md's error shape), in that order, and an entry in the OpenAPI document."""

from __future__ import annotations

import re

import pytest

from tests.review.test_review_pages import login

# (method, path, permission beyond membership or None, body that passes validation)
QUEUE_ENDPOINTS = [
    ("GET", "/api/v1/queues/claims", None, None),
    ("PATCH", "/api/v1/queues/claims/policy", "configure", {"coverage": 0.9}),
    ("POST", "/api/v1/queues/claims/items", "ingest", {"items": []}),
    ("GET", "/api/v1/queues/claims/items/e-1", None, None),
    ("POST", "/api/v1/queues/claims/claims", "review", None),
    ("POST", "/api/v1/queues/claims/undo", "review", None),
    ("POST", "/api/v1/queues/claims/items/e-1/reopen", "review", None),
    ("GET", "/api/v1/queues/claims/labels", "export", None),
    ("GET", "/api/v1/queues/claims/models", None, None),
    ("GET", "/api/v1/queues/claims/models/v1", None, None),
    ("POST", "/api/v1/queues/claims/models/v1/promote", "promote", None),
    ("POST", "/api/v1/queues/claims/models/rollback", "promote", None),
    ("GET", "/api/v1/queues/claims/models/v1/snapshot", "export", None),
    ("POST", "/api/v1/queues/claims/models/retrain", "retrain", None),
]
OTHER_ENDPOINTS = [
    ("GET", "/api/v1/queues", None, None),
    ("POST", "/api/v1/queues", "create_queue", {"name": "loans"}),
    ("POST", "/api/v1/claims/no-such-token/decision", None, {"label": "fraud"}),
    ("DELETE", "/api/v1/claims/no-such-token", None, None),
    ("POST", "/api/v1/claims/no-such-token/escalate", None, {"reason": "why"}),
    ("POST", "/api/v1/claims/no-such-token/flag", None, {"comment": "odd"}),
    ("POST", "/api/v1/claims/no-such-token/heartbeat", None, None),
]
ALL_ENDPOINTS = QUEUE_ENDPOINTS + OTHER_ENDPOINTS
ROLE_LIMITED = [e for e in ALL_ENDPOINTS if e[2] not in (None, "review")]


def _error(r, status: int, code: str):
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True)[:300])
    assert set(r.json) == {"error", "message", "details"}, r.json
    assert r.json["error"] == code and r.json["message"]
    return r.json


def _call(client, method, path, body=None, user=None):
    headers = user["headers"] if user else {}
    return client.open(path, method=method, json=body, headers=headers)


@pytest.fixture
def people(make):
    make.queue(audit_rate=0)
    return {
        "reviewer": make.user("reviewer", queues=["claims"]),
        "scientist": make.user("scientist", queues=["claims"]),
        "lead": make.user("lead", queues=["claims"]),
        "outsider": make.user("scientist"),
    }


def test_every_endpoint_wants_a_bearer_token(client, people):
    # Even with a body that would not pass: who is asking comes first.
    for method, path, _perm, _body in ALL_ENDPOINTS:
        for headers in ({}, {"Authorization": "Bearer lp_nope"}, {"Authorization": "Basic eDp5"}):
            r = client.open(path, method=method, json={"bad": [1]}, headers=headers)
            _error(r, 401, "unauthorized")


def test_a_queue_the_caller_does_not_belong_to_is_not_found(client, people):
    # A scientist may do everything on their own queues; on others the queue does not exist,
    # before any permission or body is looked at.
    for method, path, _perm, body in QUEUE_ENDPOINTS:
        r = _call(client, method, path, {"bad": [1]}, people["outsider"])
        assert "claims" in _error(r, 404, "not_found")["message"], (method, path)
        r = _call(client, method, path.replace("/claims", "/nowhere", 1), body, people["scientist"])
        _error(r, 404, "not_found")


def test_a_role_without_the_permission_is_forbidden_before_the_body(client, people):
    for method, path, perm, _body in ROLE_LIMITED:
        r = _call(client, method, path, {"bad": [1]}, people["reviewer"])
        message = _error(r, 403, "forbidden")["message"]
        assert message == f"Your role (reviewer) may not {perm.replace('_', ' ')}.", path


BAD_BODIES = [
    # (method, path, body or raw bytes, message, details)
    (
        "POST",
        "/api/v1/claims/{token}/decision",
        b"nope",
        "The body must be a JSON object.",
        [{"field": "", "message": "not a JSON object"}],
    ),
    (
        "POST",
        "/api/v1/claims/{token}/decision",
        [],
        "The body must be a JSON object.",
        [{"field": "", "message": "not a JSON object"}],
    ),
    (
        "POST",
        "/api/v1/claims/{token}/decision",
        {},
        "The decision is not valid.",
        [{"field": "label", "message": "Field required"}],
    ),
    (
        "POST",
        "/api/v1/claims/{token}/decision",
        {"label": "fraud", "extra": 1},
        "The decision is not valid.",
        [{"field": "extra", "message": "Extra inputs are not permitted"}],
    ),
    (
        "POST",
        "/api/v1/claims/{token}/decision",
        b'{"label": "fr\\u0000aud"}',
        "The body holds values that cannot be stored.",
        [{"field": "label", "message": "NUL characters (\\u0000) are not allowed"}],
    ),
    (
        "PATCH",
        "/api/v1/queues/claims/policy",
        b'{"audit_rate": NaN, "rules": [{"name": "a\\u0000"}]}',
        "The body holds values that cannot be stored.",
        [
            {"field": "audit_rate", "message": "numbers must be finite (no NaN or Infinity)"},
            {"field": "rules.0.name", "message": "NUL characters (\\u0000) are not allowed"},
        ],
    ),
    (
        "POST",
        "/api/v1/claims/{token}/decision",
        # An escaped backslash before "u0000" is six ordinary characters, not a NUL.
        b'{"label": "fr\\\\u0000aud"}',
        "'fr\\\\u0000aud' is not one of this queue's labels.",
        [{"field": "label", "message": "choose one of legit, fraud, duplicate"}],
    ),
    (
        "POST",
        "/api/v1/claims/{token}/escalate",
        {"reason": ""},
        "The escalation is not valid.",
        [{"field": "reason", "message": "String should have at least 1 character"}],
    ),
    (
        "POST",
        "/api/v1/claims/{token}/flag",
        {"comment": 5},
        "The flag is not valid.",
        [{"field": "comment", "message": "Input should be a valid string"}],
    ),
    (
        "POST",
        "/api/v1/queues",
        {"name": "loans", "policy": {"audit_rate": 3}},
        "The queue is not valid.",
        [{"field": "policy.audit_rate", "message": "Input should be less than or equal to 1"}],
    ),
    (
        "POST",
        "/api/v1/queues",
        {"name": "Bad Name!"},
        "A queue name is a slug: lower-case letters, digits and '-', at most 64.",
        [{"field": "name", "message": "not a slug"}],
    ),
    (
        "POST",
        "/api/v1/queues",
        "loans",
        "The body must be a JSON object.",
        [{"field": "", "message": "not a JSON object"}],
    ),
    (
        "PATCH",
        "/api/v1/queues/claims/policy",
        [],
        "The body must be a JSON object.",
        [{"field": "", "message": "not a JSON object"}],
    ),
    (
        "PATCH",
        "/api/v1/queues/claims/policy",
        {"coverage": "high"},
        "The policy is not valid.",
        [
            {
                "field": "policy.coverage",
                "message": "Input should be a valid number, unable to parse string as a number",
            }
        ],
    ),
    (
        "PATCH",
        "/api/v1/queues/claims/policy",
        {},
        "Send the policy fields to change, as a JSON object.",
        [{"field": "policy", "message": "expected a non-empty object"}],
    ),
    (
        "POST",
        "/api/v1/queues/claims/items",
        {"items": [{"external_id": "a", "payload": {}}, {"external_id": "", "payload": {}}]},
        None,
        [
            {
                "index": 1,
                "field": "external_id",
                "message": "String should have at least 1 character",
            }
        ],
    ),
    (
        "GET",
        "/api/v1/queues/claims/labels?format=xml",
        None,
        "format must be one of jsonl, csv, parquet.",
        [{"field": "format", "message": "unknown format"}],
    ),
]


def test_a_body_that_breaks_its_model_is_422_in_the_contract_shape(client, people):
    client.post(
        "/api/v1/queues/claims/items",
        json={"items": [{"external_id": "e-1", "payload": {"amount": 1}}]},
        headers=people["scientist"]["headers"],
    )
    r = client.post("/api/v1/queues/claims/claims", headers=people["lead"]["headers"])
    token = r.json["claim"]["token"]
    for method, path, body, message, details in BAD_BODIES:
        if isinstance(body, bytes):
            kw = {"data": body, "content_type": "application/json"}
        else:
            kw = {"json": body}
        r = client.open(
            path.format(token=token), method=method, headers=people["lead"]["headers"], **kw
        )
        got = _error(r, 422, "validation_failed")
        if message is not None:
            assert got["message"] == message, (path, body)
        assert got["details"] == details, (path, body)
    # Refused bodies changed nothing: the claim is still live.
    r = client.post(f"/api/v1/claims/{token}/heartbeat", headers=people["lead"]["headers"])
    assert r.status_code == 200


def test_the_openapi_document_lists_every_endpoint_with_its_body(app, client):
    spec = client.get("/api/openapi.json").json
    paths, schemas = spec["paths"], spec["components"]["schemas"]
    routes = [r for r in app.url_map.iter_rules() if r.rule.startswith("/api/v1/")]
    assert len(routes) >= 20
    for rule in routes:
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)  # <int:id> -> {id}
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = paths[path][method.lower()]
            assert operation["summary"] and operation["tags"], (method, path)
            # Every error, 422 included, is documented in the one shape the API answers.
            for status in ("401", "403", "404", "422"):
                ref = operation["responses"][status]["content"]["application/json"]["schema"]
                assert ref["$ref"].split("/")[-1].startswith("ErrorOut."), (method, path, status)
    bodies = {
        ("post", "/api/v1/queues"): "QueueIn",
        ("post", "/api/v1/queues/{name}/items"): "BatchIn",
        ("post", "/api/v1/claims/{token}/decision"): "DecisionIn",
        ("post", "/api/v1/claims/{token}/escalate"): "EscalateIn",
        ("post", "/api/v1/claims/{token}/flag"): "FlagIn",
        ("patch", "/api/v1/queues/{name}/policy"): "Policy",
        ("post", "/api/v1/queues/{name}/items/{external_id}/adjudicate"): "AdjudicateIn",
    }
    for (method, path), model in bodies.items():
        content = paths[path][method]["requestBody"]["content"]["application/json"]
        name = content["schema"]["$ref"].split("/")[-1]
        assert name.split(".")[0] == model and name in schemas, (method, path, name)
    labels = paths["/api/v1/queues/{name}/labels"]["get"]["parameters"]
    assert {p["name"] for p in labels} == {"name", "format", "since"}


def test_api_views_need_no_csrf_token_while_pages_still_do(client, people):
    lead = people["lead"]
    login(client, lead)  # the client now sends a session cookie too
    r = client.post("/api/v1/queues/claims/claims", headers=lead["headers"])
    assert r.status_code == 204
    r = client.post("/api/v1/queues", json={"name": "loans"}, headers=lead["headers"])
    assert r.status_code == 201
    assert client.post("/queues/claims/models/retrain").status_code == 400
