"""Tokens and roles on the API."""


def test_no_token_or_bad_token_is_401(client, make):
    make.queue()
    assert client.get("/api/v1/queues").status_code == 401
    r = client.get("/api/v1/queues", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json["error"] == "unauthorized"
    r = client.post("/api/v1/queues/claims/items", json={"items": []})
    assert r.status_code == 401


def test_non_member_sees_no_queue_and_reviewer_may_not_ingest(client, make):
    make.queue()
    outsider = make.user("scientist")
    reviewer = make.user("reviewer", queues=["claims"])
    assert client.get("/api/v1/queues", headers=outsider["headers"]).json == {"queues": []}
    assert client.get("/api/v1/queues/claims", headers=outsider["headers"]).status_code == 404
    r = client.post("/api/v1/queues/claims/items", json={"items": []}, headers=reviewer["headers"])
    assert r.status_code == 403
    assert (
        client.post("/api/v1/queues/claims/models/retrain", headers=reviewer["headers"]).status_code
        == 403
    )


def test_lead_creates_queue_and_becomes_member(client, make):
    lead = make.user("lead")
    reviewer = make.user("reviewer")
    body = {"name": "loans", "labels": ["approve", "reject"], "policy": {"audit_rate": 0.1}}
    assert client.post("/api/v1/queues", json=body, headers=reviewer["headers"]).status_code == 403
    r = client.post("/api/v1/queues", json=body, headers=lead["headers"])
    assert r.status_code == 201 and r.json["policy"]["audit_rate"] == 0.1
    assert client.post("/api/v1/queues", json=body, headers=lead["headers"]).status_code == 409
    names = [
        q["name"] for q in client.get("/api/v1/queues", headers=lead["headers"]).json["queues"]
    ]
    assert names == ["loans"]
    bad = client.post(
        "/api/v1/queues",
        json={"name": "Bad Name!", "policy": {"audit_rate": 3}},
        headers=lead["headers"],
    )
    assert bad.status_code == 422
    assert any(d["field"] == "policy.audit_rate" for d in bad.json["details"])
