"""Ingest through the HTTP API: whole batches or nothing, duplicates counted, bulk routing."""

import json

from app.models import Item, Label, Prediction
from tests.conftest import item


def test_json_batch_is_stored_and_routed(client, make, db):
    make.queue(auto_accept_threshold=0.9, min_margin=0.2, audit_rate=0.0)
    producer = make.user("scientist", queues=["claims"])
    items = [item("a-1", "fraud", 0.97), item("a-2", "legit", 0.55), item("a-3", "legit", 0.93)]
    r = client.post(
        "/api/v1/queues/claims/items", json={"items": items}, headers=producer["headers"]
    )
    assert r.status_code == 200, r.json
    assert r.json == {
        "received": 3,
        "created": 3,
        "duplicates": 0,
        "routed": {"review": 1, "auto_accepted": 2, "audit": 0},
    }
    got = client.get("/api/v1/queues/claims/items/a-1", headers=producer["headers"]).json
    assert got["status"] == "auto_accepted"
    assert got["label"]["value"] == "fraud" and got["label"]["source"] == "auto"
    assert "0.97" in got["route"]["reason"]
    pending = client.get("/api/v1/queues/claims/items/a-2", headers=producer["headers"]).json
    assert (
        pending["status"] == "pending"
        and "below the auto-accept threshold" in pending["route"]["reason"]
    )
    assert db.count(Prediction) == 3


def test_ndjson_batch_and_duplicates_are_not_stored_twice(client, make, db):
    make.queue()
    producer = make.user("scientist", queues=["claims"])
    lines = "\n".join(json.dumps(item(f"n-{i}")) for i in range(5)) + "\n"
    headers = {**producer["headers"], "Content-Type": "application/x-ndjson"}
    first = client.post("/api/v1/queues/claims/items", data=lines, headers=headers)
    assert first.status_code == 200 and first.json["created"] == 5
    # Re-sending the same ids, plus a repeat inside the batch, creates nothing new.
    again = lines + json.dumps(item("n-new")) + "\n" + json.dumps(item("n-new")) + "\n"
    second = client.post("/api/v1/queues/claims/items", data=again, headers=headers)
    assert second.json["received"] == 7
    assert second.json["created"] == 1
    assert second.json["duplicates"] == 6
    assert db.count(Item) == 6


def test_one_bad_row_in_the_middle_rejects_the_whole_batch(client, make, db):
    make.queue()
    producer = make.user("scientist", queues=["claims"])
    items = [item(f"b-{i}") for i in range(10)]
    items[4] = {"external_id": "b-4", "payload": "not an object"}
    items[7]["prediction"]["candidates"][0]["score"] = 1.7
    r = client.post(
        "/api/v1/queues/claims/items", json={"items": items}, headers=producer["headers"]
    )
    assert r.status_code == 422
    assert r.json["error"] == "validation_failed"
    rows = {(d["index"], d["field"]) for d in r.json["details"]}
    assert (4, "payload") in rows
    assert (7, "prediction.candidates.0.score") in rows
    assert "nothing was stored" in r.json["message"]
    assert db.count(Item) == 0 and db.count(Label) == 0


def test_ndjson_bad_line_is_named_by_line_number(client, make, db):
    make.queue()
    producer = make.user("scientist", queues=["claims"])
    body = json.dumps(item("ok-0")) + "\n{not json\n" + json.dumps(item("ok-2")) + "\n"
    r = client.post(
        "/api/v1/queues/claims/items",
        data=body,
        headers={**producer["headers"], "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 422
    assert [d["index"] for d in r.json["details"]] == [1]
    assert db.count(Item) == 0


def test_wrong_types_missing_fields_and_unknown_labels(client, make, db):
    make.queue()
    producer = make.user("scientist", queues=["claims"])
    bad = [
        {"payload": {}},  # no external_id
        {"external_id": 42, "payload": {}},  # wrong type
        {"external_id": "x", "payload": {}, "priority": "high"},
        item("y", label="fraud")
        | {"prediction": {"candidates": [{"label": "maybe", "score": 0.5}]}},
        {"external_id": "", "payload": {}},
        {"external_id": "z", "payload": {}, "surprise": 1},
    ]
    r = client.post("/api/v1/queues/claims/items", json={"items": bad}, headers=producer["headers"])
    assert r.status_code == 422
    indexes = {d["index"] for d in r.json["details"]}
    assert {0, 1, 2, 4, 5} <= indexes
    # Unknown labels are checked once the rows are well-formed.
    r = client.post(
        "/api/v1/queues/claims/items", json={"items": [bad[3]]}, headers=producer["headers"]
    )
    assert r.status_code == 422
    assert r.json["details"][0]["field"] == "prediction.candidates.0.label"
    assert db.count(Item) == 0


def test_malformed_bodies_get_clear_errors_not_500(client, make):
    make.queue()
    producer = make.user("scientist", queues=["claims"])
    h = producer["headers"]
    for body, ctype in [
        ("{", "application/json"),
        ("[]", "application/json"),
        ('{"items": 5}', "application/json"),
        ("hello", "text/plain"),
    ]:
        r = client.post(
            "/api/v1/queues/claims/items", data=body, headers={**h, "Content-Type": ctype}
        )
        assert r.status_code in (415, 422), (body, r.status_code)
        assert set(r.json) == {"error", "message", "details"}


def test_body_over_the_limit_gets_413(app, client, make, db):
    make.queue()
    producer = make.user("scientist", queues=["claims"])
    app.config["MAX_CONTENT_LENGTH"] = 10_000
    big = {"items": [item("big", payload={"note": "x" * 20_000})]}
    r = client.post("/api/v1/queues/claims/items", json=big, headers=producer["headers"])
    assert r.status_code == 413
    assert r.json["error"] == "too_large"
    assert db.count(Item) == 0


def test_hostile_strings_are_stored_verbatim(client, make):
    make.queue(labels=None)
    producer = make.user("scientist", queues=["claims"])
    hostile = {
        "note": "<script>alert(1)</script>",
        "sql": "'; DROP TABLE item; --",
        "unicode": "Zoë 💸 \u202e gnp.exe",
    }
    r = client.post(
        "/api/v1/queues/claims/items",
        json={"items": [{"external_id": "évil/<b>", "payload": hostile}]},
        headers=producer["headers"],
    )
    assert r.status_code == 200, r.json
    got = client.get("/api/v1/queues/claims/items/évil/<b>", headers=producer["headers"])
    assert got.status_code == 200
    assert got.json["payload"]["sql"] == hostile["sql"]
    assert got.json["payload"]["unicode"] == hostile["unicode"]


def test_nul_characters_get_a_clear_error(client, make, db):
    make.queue(labels=None)
    producer = make.user("scientist", queues=["claims"])
    r = client.post(
        "/api/v1/queues/claims/items",
        json={"items": [{"external_id": "n", "payload": {"note": "a\u0000b"}}]},
        headers=producer["headers"],
    )
    assert r.status_code == 422
    assert r.json["details"][0]["field"] == "payload.note"
    assert "NUL" in r.json["details"][0]["message"]
