"""The whole loop over HTTP with a real `loupe worker` process."""

import csv
import io
import json

from app.demo.claims import generate_claims
from app.models import TrainingExample
from tests.conftest import wait_for


def test_ingest_review_learn_retrain_score_export(client, make, db, worker_process):
    make.queue(audit_rate=0, retrain_after=0)
    producer = make.user("scientist", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    claims = generate_claims(80, seed=3)
    items = [
        {
            "external_id": c["external_id"],
            "payload": c["payload"],
            "prediction": {
                "model_version": "upstream-7",
                "candidates": [
                    {"label": "legit", "score": 0.5},
                    {"label": "fraud", "score": 0.3},
                    {"label": "duplicate", "score": 0.2},
                ],
            },
        }
        for c in claims[:60]
    ]
    r = client.post(
        "/api/v1/queues/claims/items", json={"items": items}, headers=producer["headers"]
    )
    assert r.json["routed"]["review"] == 60

    worker = worker_process()
    truth = {c["external_id"]: c["label"] for c in claims}
    for _ in range(60):
        claim = client.post("/api/v1/queues/claims/claims", headers=reviewer["headers"]).json[
            "claim"
        ]
        ext = claim["item"]["external_id"]
        r = client.post(
            f"/api/v1/claims/{claim['token']}/decision",
            json={"label": truth[ext], "comment": "checked"},
            headers=reviewer["headers"],
        )
        assert r.status_code == 200
    # The worker turns each decision into exactly one training example.
    wait_for(lambda: db.count(TrainingExample) == 60, what="60 training examples")
    queue = client.get("/api/v1/queues/claims", headers=producer["headers"]).json
    assert queue["training"] == {"examples": 60, "awaiting": 0}

    r = client.post("/api/v1/queues/claims/models/retrain", headers=producer["headers"])
    assert r.status_code == 202 and r.json["job_id"]
    versions = wait_for(
        lambda: client.get("/api/v1/queues/claims/models", headers=producer["headers"]).json[
            "versions"
        ],
        what="a model version",
    )
    assert versions[0]["active"] is True and len(versions[0]["snapshot"]) == 64
    m = versions[0]["metrics"]
    assert m["n_train"] + m["n_conformal"] + m["n_eval"] == 60

    # New items without a prediction are scored by the new model.
    fresh = [{"external_id": c["external_id"], "payload": c["payload"]} for c in claims[60:]]
    client.post("/api/v1/queues/claims/items", json={"items": fresh}, headers=producer["headers"])
    one = client.get(
        f"/api/v1/queues/claims/items/{claims[70]['external_id']}", headers=producer["headers"]
    ).json
    assert one["prediction"]["source"] == "model"
    assert one["prediction"]["model_version"] == versions[0]["version"]
    # With 12 held-out labels a 95% set must hold every answer: calibrated scores sum to 1.
    detail = one["prediction"]["detail"]
    assert {k: detail[k] for k in ("coverage", "set_size", "mode")} == {
        "coverage": 0.95,
        "set_size": 3,
        "mode": "every_answer",
    }
    assert one["route"]["decision"] == "review"
    cands = one["prediction"]["candidates"]
    margin = round(cands[0]["score"] - cands[1]["score"], 4)
    assert abs(detail["margin"] - margin) <= 2e-4  # from unrounded probabilities
    assert abs(sum(c["score"] for c in cands) - 1) < 0.01

    export = client.get("/api/v1/queues/claims/labels?format=csv", headers=producer["headers"])
    rows = list(csv.DictReader(io.StringIO(export.data.decode())))
    human = [r for r in rows if r["source"] == "human"]
    assert len(human) == 60
    first = human[0]
    assert first["reviewers"] == reviewer["name"]
    assert first["label"] == truth[first["external_id"]]
    assert first["model_version"] == "upstream-7" and first["model_label"] == "legit"
    assert float(first["model_score"]) == 0.5
    assert json.loads(first["payload"])["currency"] == "EUR"
    assert worker.poll() is None, "the worker process died"
