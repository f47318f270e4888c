"""Inputs that once slipped through: line separators, two objects a line, bad bytes, NaN."""

import json

from app.ingest.service import _cell
from app.models import Item
from tests.conftest import item

NDJSON = "application/x-ndjson"


def _post(client, producer, body, ctype=NDJSON):
    return client.post(
        "/api/v1/queues/claims/items",
        data=body,
        headers={**producer["headers"], "Content-Type": ctype},
    )


def test_unicode_line_separators_stay_inside_strings(client, make):
    make.queue(labels=None)
    producer = make.user("scientist", queues=["claims"])
    note = "line\u2028two\u2029three\x85four"
    body = json.dumps({"external_id": "u", "payload": {"note": note}}, ensure_ascii=False)
    r = _post(client, producer, body.encode())
    assert r.status_code == 200 and r.json["created"] == 1
    got = client.get("/api/v1/queues/claims/items/u", headers=producer["headers"]).json
    assert got["payload"]["note"] == note


def test_two_objects_on_one_line_are_refused(client, make, db):
    make.queue(labels=None)
    producer = make.user("scientist", queues=["claims"])
    a = json.dumps({"external_id": "a", "payload": {}})
    b = json.dumps({"external_id": "b", "payload": {}})
    r = _post(client, producer, f"{a},{b}\n")
    assert r.status_code == 422 and r.json["details"][0]["index"] == 0
    assert db.count(Item) == 0


def test_bytes_that_are_not_utf8_get_422(client, make):
    make.queue(labels=None)
    producer = make.user("scientist", queues=["claims"])
    r = _post(client, producer, b'{"external_id": "x", "payload": {"n": "\xff"}}\n')
    assert r.status_code == 422
    r = _post(
        client,
        producer,
        b'{"items": [{"external_id": "x", "payload": {"n": "\xff"}}]}',
        "application/json",
    )
    assert r.status_code == 422


def test_non_finite_numbers_are_refused_with_their_place(client, make, db):
    make.queue(labels=None)
    producer = make.user("scientist", queues=["claims"])
    body = (
        '{"external_id": "ok", "payload": {"x": 1e300}}\n'
        '{"external_id": "n", "payload": {"x": NaN}}\n'
        '{"external_id": "i", "payload": {"deep": [1, 1e400]}}\n'
    )
    r = _post(client, producer, body)
    assert r.status_code == 422
    assert {(d["index"], d["field"]) for d in r.json["details"]} == {
        (1, "payload.x"),
        (2, "payload.deep.1"),
    }
    assert db.count(Item) == 0


def test_csv_cells_become_numbers_only_when_plainly_numbers():
    assert _cell("12") == 12 and _cell("-3.5") == -3.5 and _cell("2e5") == 2e5
    for text in ("01234", "NaN", "inf", "1_000", "12a", "", "Infinity", "1e400"):
        assert _cell(text) == text


def test_nul_anywhere_in_the_request_is_refused(client, make):
    make.queue()
    producer = make.user("scientist", queues=["claims"])
    assert client.get("/api/v1/queues/a%00b", headers=producer["headers"]).status_code == 400
    lead = make.user("lead")
    r = client.post("/api/v1/queues", json={"name": "x\u0000"}, headers=lead["headers"])
    assert r.status_code == 422
    assert client.get("/login?next=%00").status_code == 400


def test_batches_over_the_item_limit_get_413(app, client, make, db):
    make.queue()
    producer = make.user("scientist", queues=["claims"])
    app.config["LOUPE_SETTINGS"].max_batch_items = 3
    try:
        r = client.post(
            "/api/v1/queues/claims/items",
            headers=producer["headers"],
            json={"items": [item(f"l-{i}") for i in range(4)]},
        )
    finally:
        app.config["LOUPE_SETTINGS"].max_batch_items = 50_000
    assert r.status_code == 413 and db.count(Item) == 0
