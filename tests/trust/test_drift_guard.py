"""The drift and novelty guard over HTTP with a real worker: items unlike the training data
go to a person with a reason naming the field, and the queue's drift status rises."""

import math

from sqlalchemy import select

from app.db import session_scope
from app.demo.claims import generate_claims
from app.learning.drift import drift_alarm
from app.learning.profile import number
from app.models import ModelVersion, Queue
from app.queues.events import history
from app.trust.alarms import INPUT_DRIFT, check_queue
from tests.conftest import wait_for
from tests.learning.test_training import _labelled
from tests.review.test_review_pages import login

N_LABELLED = 600


def _post(client, producer, items):
    r = client.post(
        "/api/v1/queues/claims/items", json={"items": items}, headers=producer["headers"]
    )
    assert r.status_code in (200, 201), r.json
    return r.json


def _read(client, producer, ext):
    r = client.get(f"/api/v1/queues/claims/items/{ext}", headers=producer["headers"])
    assert r.status_code == 200
    return r.json


def test_shifted_amounts_and_unseen_values_go_to_a_person_and_raise_drift(
    client, make, db, engine, worker_process, monkeypatch
):
    # The worker's maintenance checks alarms once as it starts (no drift yet), not again
    # while this test runs: the drift alarm would pause auto-accept before the test has seen
    # ordinary items pass the guard during the alarm (a race on a busy machine). The test
    # runs the alarm check itself at the end.
    monkeypatch.setenv("LOUPE_ALARM_CHECK_INTERVAL", "3600")
    make.queue(audit_rate=0, retrain_after=0)
    producer = make.user("scientist", queues=["claims"])
    make.user("reviewer", queues=["claims"])
    lead = make.user("lead", queues=["claims"])
    _labelled(engine, N_LABELLED, seed=1)
    worker_process()
    r = client.post("/api/v1/queues/claims/models/retrain", headers=producer["headers"])
    assert r.status_code == 202
    version = wait_for(
        lambda: client.get("/api/v1/queues/claims/models", headers=producer["headers"]).json[
            "versions"
        ],
        timeout=120,
        what="a model version",
    )[0]
    assert version["active"]
    with session_scope(engine) as s:
        card = (
            s.scalars(select(ModelVersion).where(ModelVersion.version == version["version"]))
            .one()
            .card
        )
    amount = card["profile"]["features"]["amount"]
    assert card["novelty"]["threshold"] is not None and card["novelty"]["n_held_out"] > 100

    quality = client.get("/api/v1/queues/claims/quality", headers=producer["headers"]).json
    assert quality["drift"]["status"] == "ok", quality["drift"]
    assert quality["drift"]["window"] == N_LABELLED

    # In-distribution items: the guard lets the confident ones through.
    normal = generate_claims(300, seed=11)
    out = _post(
        client,
        producer,
        [{"external_id": f"n-{c['external_id']}", "payload": c["payload"]} for c in normal],
    )
    confident, accepted = 0, 0
    for c in normal:
        item = _read(client, producer, f"n-{c['external_id']}")
        detail, top = item["prediction"]["detail"], item["prediction"]["candidates"][0]
        if detail.get("set_size") == 1 and top["score"] >= 0.9:
            confident += 1
            accepted += item["route"]["decision"] == "auto_accept"
    said = f"normal: {out['routed']}; confident {confident}, auto-accepted {accepted}"
    assert confident >= 15, said
    # The novelty check sends about 1 in 100 ordinary items to a person; allow noise.
    assert accepted >= 0.9 * confident, said
    quality = client.get("/api/v1/queues/claims/quality", headers=producer["headers"]).json
    assert quality["drift"]["status"] == "ok", quality["drift"]

    # One numeric field sent x100.
    shifted = generate_claims(400, seed=12)
    out = _post(
        client,
        producer,
        [
            {
                "external_id": f"x-{c['external_id']}",
                "payload": {**c["payload"], "amount": c["payload"]["amount"] * 100},
            }
            for c in shifted
        ],
    )
    outside, auto_inside = 0, 0
    for c in shifted:
        item = _read(client, producer, f"x-{c['external_id']}")
        value = c["payload"]["amount"] * 100
        if value > amount["high"]:
            outside += 1
            assert item["route"]["decision"] == "review", item
            assert item["route"]["reason"].startswith(f"amount {number(value)} is far outside")
            assert "far outside what the model learned from" in item["route"]["reason"]
            assert item["route"]["reason"].endswith("a person must check")
            assert item["prediction"]["detail"]["drift"][0]["field"] == "amount"
        else:
            auto_inside += item["route"]["decision"] == "auto_accept"
    said = (
        f"x100: {out['routed']}; {outside} of {len(shifted)} beyond the training range, "
        f"{auto_inside} auto-accepted within it"
    )
    assert outside >= 0.75 * len(shifted), said
    # Those still inside the range look ordinary one at a time, but the batch as a whole is
    # in drift alarm: none of the shifted items is auto-accepted, from the first batch on.
    assert out["routed"]["auto_accepted"] == 0 and auto_inside == 0, said
    quality = client.get("/api/v1/queues/claims/quality", headers=producer["headers"]).json
    drift = quality["drift"]
    assert drift["status"] == "alarm", drift
    assert drift["features"][0]["name"] == "amount" and drift["features"][0]["psi"] >= 0.25
    assert {f["name"] for f in drift["features"] if f["status"] != "ok"} == {"amount"}
    with session_scope(engine) as s:
        reason = drift_alarm(s, s.scalars(select(Queue).where(Queue.name == "claims")).one())
    assert reason is not None and "amount (PSI" in reason

    # While the alarm lasts, shifted values inside the training range are held back too,
    # while ordinary items with amounts where recent items do not crowd still auto-accept.
    more = generate_claims(500, seed=14)
    shifted_again = [
        {
            "external_id": f"y-{c['external_id']}",
            "payload": {**c["payload"], "amount": c["payload"]["amount"] * 100},
        }
        for c in more[:200]
    ]
    ordinary = [{"external_id": f"o-{c['external_id']}", "payload": c["payload"]} for c in more]
    out = _post(client, producer, shifted_again + ordinary[200:])
    for it in shifted_again:
        route = _read(client, producer, it["external_id"])["route"]
        assert route["decision"] == "review", route
        assert route["reason"].startswith("amount "), route
    inside = [it for it in shifted_again if it["payload"]["amount"] <= amount["high"]]
    assert inside, "some shifted amounts lie inside the training range"
    assert all(
        "lies where recent items crowd far more than the model's training data (drift alarm "
        "on amount" in _read(client, producer, it["external_id"])["route"]["reason"]
        for it in inside
    )
    confident, accepted = 0, 0
    for it in ordinary[200:]:
        item = _read(client, producer, it["external_id"])
        detail, top = item["prediction"]["detail"], item["prediction"]["candidates"][0]
        if detail.get("set_size") == 1 and top["score"] >= 0.9 and it["payload"]["amount"] < 500:
            confident += 1
            accepted += item["route"]["decision"] == "auto_accept"
    said = f"during the alarm: {out['routed']}; confident small amounts {confident}, {accepted}"
    assert confident >= 5 and accepted >= 0.8 * confident, said

    metrics = client.get("/metrics").data.decode()
    assert 'loupe_queue_drift_level{queue="claims"} 2.0' in metrics
    psi_line = next(
        line
        for line in metrics.splitlines()
        if line.startswith('loupe_queue_drift_psi{feature="amount",queue="claims"}')
    )
    assert float(psi_line.split()[-1]) >= 0.25
    login(client, lead)
    page = client.get("/queues/claims/models").data.decode()
    assert "Unlike the training data (alarm)" in page and "amount: PSI" in page

    # The drift alarm acts as the precision alarm does: raised by the alarm checks, it
    # pauses auto-accept until a lead resumes it.
    with session_scope(engine) as s:
        check_queue(session=s, queue=s.scalars(select(Queue).where(Queue.name == "claims")).one())
    quality = client.get("/api/v1/queues/claims/quality", headers=producer["headers"]).json
    with session_scope(engine) as s:
        events = history(
            session=s, queue=s.scalars(select(Queue).where(Queue.name == "claims")).one()
        )
    assert [a["kind"] for a in quality["alarms"]] == [INPUT_DRIFT], events
    assert "amount (PSI" in quality["alarms"][0]["detail"]
    assert quality["auto_accept"]["paused"] is True
    assert 'loupe_queue_alarm{kind="input_drift",queue="claims"} 1.0' in (
        client.get("/metrics").data.decode()
    )

    # A value never seen in a closed categorical field; bad input that must not crash scoring.
    base = generate_claims(1, seed=13)[0]["payload"]
    odd = {
        "unseen": {**base, "country": "ZZ"},
        "missing": {k: v for k, v in base.items() if k != "amount"},
        "string": {**base, "amount": "a lot"},
        "nan": {**base, "amount": "NaN"},
        "inf": {**base, "amount": "1e999"},
        "huge": {**base, "amount": 1e308},
        "null": {**base, "amount": None, "country": None},
        "nested": {**base, "amount": {"value": 3}, "country": ["DE"]},
        "empty": {},
    }
    out = _post(client, producer, [{"external_id": k, "payload": p} for k, p in odd.items()])
    assert out["created"] == len(odd)
    routes = {k: _read(client, producer, k)["route"] for k in odd}
    assert all(r["decision"] == "review" for r in routes.values()), routes
    assert routes["unseen"]["reason"].startswith(
        "country 'ZZ' is a value the model never saw in training"
    )
    for k in ("missing", "string", "nan", "inf", "nested", "null"):
        assert "amount is missing or not a number" in routes[k]["reason"], routes[k]
    assert routes["huge"]["reason"].startswith("amount 1e+308 is far outside")
    assert "country is missing" in routes["null"]["reason"]
    assert math.isfinite(_read(client, producer, "empty")["prediction"]["candidates"][0]["score"])
