"""The quality report's coverage section on live queues, and candidate sets as a queue with
few labels serves them (issue 10, point 5)."""

from sqlalchemy import select
from statsmodels.stats.proportion import proportion_confint

from app.db import session_scope
from app.demo.claims import generate_claims
from app.models import Item, Label, ModelVersion, Prediction, Queue
from app.trust.coverage import coverage_section
from tests.conftest import wait_for
from tests.learning.test_training import _labelled
from tests.review.test_review_pages import login


def _train_with_the_worker(client, lead):
    r = client.post("/api/v1/queues/claims/models/retrain", headers=lead["headers"])
    assert r.status_code == 202
    listing = wait_for(
        lambda: (lambda j: j if j["runs"] and j["runs"][0]["status"] != "running" else None)(
            client.get("/api/v1/queues/claims/models", headers=lead["headers"]).json
        ),
        timeout=120,
        what="a finished training run",
    )
    assert listing["runs"][0]["status"] == "trained", listing["runs"][0]
    return listing["versions"][0]["version"]


def _review_everything(client, reviewer, answer_of):
    """The reviewer answers every waiting item over the API; per decision, what the
    reviewer was shown and the answer given."""
    seen = []
    while True:
        r = client.post("/api/v1/queues/claims/claims", headers=reviewer["headers"])
        if r.status_code == 204:
            return seen
        item = r.json["claim"]["item"]
        answer = answer_of(item["external_id"])
        seen.append((item["prediction"], answer))
        d = client.post(
            f"/api/v1/claims/{r.json['claim']['token']}/decision",
            json={"label": answer},
            headers=reviewer["headers"],
        )
        assert d.status_code == 200, d.json


def test_measured_coverage_on_a_live_queue_matches_a_hand_count(
    client, make, engine, db, worker_process
):
    make.queue(audit_rate=0.2, retrain_after=0, auto_accept_threshold=0.7, min_margin=0)
    lead = make.user("lead", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    _labelled(engine, 400)  # decided before the model existed: not part of the measure
    worker_process()
    version = _train_with_the_worker(client, lead)

    before = client.get("/api/v1/queues/claims/quality", headers=reviewer["headers"]).json
    assert before["coverage"]["version"] == version
    assert before["coverage"]["n"] == 0 and before["coverage"]["measured"] is None

    claims = generate_claims(240, seed=21)
    truth = {f"new-{i}": c["label"] for i, c in enumerate(claims)}
    r = client.post(
        "/api/v1/queues/claims/items",
        json={
            "items": [
                {"external_id": f"new-{i}", "payload": c["payload"]} for i, c in enumerate(claims)
            ]
        },
        headers=lead["headers"],
    )
    assert r.status_code in (200, 201, 202), r.json
    # Every 7th answer is "duplicate", right or not: some lists will miss it.
    seen = _review_everything(
        client,
        reviewer,
        lambda ext: "duplicate" if int(ext.split("-")[1]) % 7 == 0 else truth[ext],
    )
    assert len(seen) >= 30
    assert all(p["model_version"] == version and p["detail"]["set_size"] >= 1 for p, _ in seen)

    # The hand count: was the answer among the candidates the reviewer was shown?
    hits = [answer in {c["label"] for c in p["candidates"]} for p, answer in seen]
    assert 0 < sum(hits) < len(hits)  # some misses, or the check proves nothing
    cov = client.get("/api/v1/queues/claims/quality", headers=reviewer["headers"]).json["coverage"]
    low, high = proportion_confint(sum(hits), len(hits), alpha=0.05, method="wilson")
    assert cov["n"] == len(seen) and cov["measured"] == round(sum(hits) / len(hits), 4)
    assert (cov["lower"], cov["upper"]) == (round(low, 4), round(high, 4))
    assert cov["target"] == 0.95 and cov["version"] == version and cov["not_measurable"] == 0
    assert cov["interval"] == {"method": "wilson", "confidence": 0.95}
    for answer in {a for _, a in seen}:
        mine = [h for h, (_, a) in zip(hits, seen, strict=True) if a == answer]
        assert cov["per_answer"][answer]["n"] == len(mine)
        assert cov["per_answer"][answer]["measured"] == round(sum(mine) / len(mine), 4)
    # Auto-accepted items have no person's answer and are not in the count.
    auto = db.count(Item, Item.status == "auto_accepted")
    assert len(seen) + auto == 240
    # The card's held-out figure is there too, for comparison.
    assert cov["held_out"]["n"] == 80 and cov["held_out"]["lower"] <= cov["held_out"]["measured"]

    # The same section from the function the page calls, and the model card shows it.
    with session_scope(engine) as s:
        assert coverage_section(session=s, queue=s.scalar(select(Queue))) == cov
    login(client, lead)
    html = client.get(f"/queues/claims/models/{version}").get_data(as_text=True)
    assert f"{cov['measured'] * 100:.1f}%" in html and f"{len(seen)} decisions" in html


def test_few_labels_offer_unseen_answers_never_empty_and_never_auto_accept(
    client, make, engine, db
):
    from app.learning.registry import activate
    from app.learning.training import train_model_version

    queue_id = make.queue(
        labels=("legit", "fraud", "duplicate", "<b>chargeback</b>"),
        audit_rate=0,
        retrain_after=0,
        auto_accept_threshold=0,
        min_margin=0,
    )
    lead = make.user("lead", queues=["claims"])
    make.user("reviewer", queues=["claims"])
    _labelled(engine, 12, seed=5)
    with session_scope(engine) as s:
        v = train_model_version(db=s, queue_id=queue_id).version
        # The gate keeps a first model with this few labels per answer as a candidate; a
        # lead can still make it active, and then its lists must stay honest.
        assert not v.active and "first model" in v.metrics["promotion_reason"]
        activate(session=s, version=v, by="a lead")
        seen_answers = set(v.metrics["classes"])
    unseen = {"legit", "fraud", "duplicate", "<b>chargeback</b>"} - seen_answers
    assert "<b>chargeback</b>" in unseen

    claims = generate_claims(40, seed=9)
    r = client.post(
        "/api/v1/queues/claims/items",
        json={
            "items": [
                {"external_id": f"f-{i}", "payload": c["payload"]} for i, c in enumerate(claims)
            ]
        },
        headers=lead["headers"],
    )
    assert r.status_code in (200, 201, 202), r.json
    assert db.count(Item, Item.status == "auto_accepted") == 0
    named_unseen = 0
    for i in range(40):
        body = client.get(f"/api/v1/queues/claims/items/f-{i}", headers=lead["headers"]).json
        cands, detail = body["prediction"]["candidates"], body["prediction"]["detail"]
        assert cands and detail["set_size"] >= 1
        offered = {c["label"] for c in cands if c.get("unseen")}
        assert offered == unseen and all(c["score"] is None for c in cands if c.get("unseen"))
        assert body["route"]["decision"] == "review"
        if detail.get("drift"):
            # Unlike anything 12 labels showed the model: the drift guard's reason comes first.
            continue
        named_unseen += 1
        assert "has never seen the answer" in body["route"]["reason"]
        assert "'<b>chargeback</b>'" in body["route"]["reason"]
    assert named_unseen >= 10

    # The reviewer sees them, said plainly, with the label escaped.
    user = make.user("reviewer", queues=["claims"])
    login(client, user)
    html = client.get("/queues/claims/review").get_data(as_text=True)
    assert "the model has never seen this answer" in html
    assert "&lt;b&gt;chargeback&lt;/b&gt;" in html and "<b>chargeback</b>" not in html
    assert "has not learnt every answer yet" in html


def test_quality_coverage_bad_input_and_no_model(client, make, engine, db):
    make.queue()
    reviewer = make.user("reviewer", queues=["claims"])
    lead = make.user("lead", queues=["claims"])
    outsider = make.user("reviewer")
    ok = client.get("/api/v1/queues/claims/quality", headers=reviewer["headers"])
    assert ok.status_code == 200
    cov = ok.json["coverage"]
    assert cov["target"] == 0.95 and cov["n"] == 0 and cov["measured"] is None
    assert cov["lower"] is None and cov["per_answer"] == {} and cov["version"] is None
    for path, headers, status in (
        ("/api/v1/queues/claims/quality", {}, 401),
        ("/api/v1/queues/claims/quality", outsider["headers"], 404),
        ("/api/v1/queues/nope/quality", reviewer["headers"], 404),
        ("/api/v1/queues/%3Cscript%3E/quality", reviewer["headers"], 404),
        ("/api/v1/queues/" + "x" * 5000 + "/quality", reviewer["headers"], 404),
    ):
        r = client.get(path, headers=headers)
        assert r.status_code == status, (path, r.status_code)
        assert r.json["error"] and r.mimetype == "application/json"
    # Coverage targets the sets cannot promise are refused, and nothing changes.
    for bad in (1.0, 0.2, "0.9x", None, [0.9], 10**400):
        r = client.patch(
            "/api/v1/queues/claims/policy",
            json={"coverage": bad} if bad != 10**400 else None,
            data=None if bad != 10**400 else '{"coverage": 1e400}',
            headers={**lead["headers"], "Content-Type": "application/json"},
        )
        assert r.status_code == 422, (bad, r.status_code)
        assert r.json["error"] == "validation_failed"
    cov = client.get("/api/v1/queues/claims/quality", headers=reviewer["headers"]).json["coverage"]
    assert cov["target"] == 0.95
    assert db.count(ModelVersion) == 0 and db.count(Label) == 0 and db.count(Prediction) == 0
