"""Label exports: every format, the provenance fields, the since filter."""

import io
import json

import pyarrow.parquet as pq

from tests.conftest import item

FIELDS = {
    "external_id",
    "label",
    "source",
    "reviewers",
    "decided_at",
    "model_version",
    "model_label",
    "model_score",
    "model_feedback",
    "payload",
    "shown",  # what each reviewer was shown (issue 11, point 8)
}


def _setup(client, make, n_auto=3):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    client.post(
        "/api/v1/queues/claims/items",
        headers=producer["headers"],
        json={
            "items": [
                item(f"x-{i}", "fraud", 0.97, payload={"n": i, "t": "<b>é</b>"})
                for i in range(n_auto)
            ]
        },
    )
    return producer


def test_jsonl_and_csv_carry_provenance(client, make):
    producer = _setup(client, make)
    r = client.get("/api/v1/queues/claims/labels?format=jsonl", headers=producer["headers"])
    assert r.status_code == 200 and r.mimetype == "application/x-ndjson"
    rows = [json.loads(line) for line in r.data.decode().splitlines()]
    assert len(rows) == 3 and set(rows[0]) == FIELDS
    assert rows[0]["source"] == "auto" and rows[0]["model_score"] == 0.97
    assert rows[0]["payload"] == {"n": 0, "t": "<b>é</b>"}
    csv = client.get("/api/v1/queues/claims/labels?format=csv", headers=producer["headers"])
    header = csv.data.decode().splitlines()[0].split(",")
    assert set(header) == FIELDS
    assert "attachment" in csv.headers["Content-Disposition"]


def test_parquet_streams_a_readable_file(client, make):
    producer = _setup(client, make, n_auto=4500)  # more than one row group
    r = client.get("/api/v1/queues/claims/labels?format=parquet", headers=producer["headers"])
    table = pq.read_table(io.BytesIO(r.data))
    assert table.num_rows == 4500
    assert set(table.column_names) == FIELDS
    assert json.loads(table.column("payload")[10].as_py())["n"] == 10


def test_since_filter_and_bad_parameters(client, make):
    producer = _setup(client, make)
    h = producer["headers"]
    future = client.get("/api/v1/queues/claims/labels?since=2999-01-01T00:00:00Z", headers=h)
    assert future.status_code == 200 and future.data == b""
    past = client.get("/api/v1/queues/claims/labels?since=2000-01-01T00:00:00%2B00:00", headers=h)
    assert len(past.data.decode().splitlines()) == 3
    assert client.get("/api/v1/queues/claims/labels?format=xml", headers=h).status_code == 422
    assert client.get("/api/v1/queues/claims/labels?since=yesterday", headers=h).status_code == 422
    reviewer = make.user("reviewer", queues=["claims"])
    assert (
        client.get("/api/v1/queues/claims/labels", headers=reviewer["headers"]).status_code == 403
    )
