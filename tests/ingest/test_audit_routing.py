"""Audits: an item the model would auto-accept goes to a person instead at the queue's
audit_rate, chosen by a draw fixed by the queue and the item's external_id (so re-sending or
re-ordering never changes it), and the label that person gives has source `audit`."""

import json

from sqlalchemy import select

from app.models import Item, Label
from app.routing.decision import audit_draw
from tests.conftest import item

ITEMS = "/api/v1/queues/claims/items"


def _routes(db) -> dict[str, tuple[str, str, str]]:
    rows = db.all(select(Item.external_id, Item.route_decision, Item.status, Item.route_reason))
    return {ext: (decision, status, reason) for ext, decision, status, reason in rows}


def test_would_be_auto_accepts_are_audited_at_the_rate_by_external_id(client, make, db):
    make.queue(audit_rate=0.25)
    producer = make.user("scientist", queues=["claims"])
    ids = [f"claim-{i:04d}" for i in range(400)]
    # Every item clears the auto-accept threshold and margin (0.97, 0.955 ahead). Two batches
    # in different orders and formats: the draw depends on nothing but the item.
    first = client.post(
        ITEMS, json={"items": [item(e, "fraud", 0.97) for e in ids[:200]]}, **_h(producer)
    )
    ndjson = "\n".join(json.dumps(item(e, "fraud", 0.97)) for e in reversed(ids[200:]))
    second = client.post(ITEMS, data=ndjson, content_type="application/x-ndjson", **_h(producer))
    routes = _routes(db)
    audited = {e for e, (decision, _, _) in routes.items() if decision == "audit"}
    assert audited == {e for e in ids if audit_draw("claims", e) < 0.25}
    assert 65 <= len(audited) <= 135  # 100 expected; four standard deviations either way
    for e, (decision, status, reason) in routes.items():
        if e in audited:
            assert status == "pending"
            assert reason == (
                "random audit (25%) of an item that would be auto-accepted (score 0.97)"
            )
        else:
            assert (decision, status) == ("auto_accept", "auto_accepted")
    routed = [r.json["routed"] for r in (first, second)]
    assert sum(r["audit"] for r in routed) == len(audited)
    assert sum(r["auto_accepted"] for r in routed) == 400 - len(audited)
    assert sum(r["review"] for r in routed) == 0

    # Re-sending changes nothing: duplicates are counted, not routed again.
    again = client.post(
        ITEMS, json={"items": [item(e, "fraud", 0.97) for e in ids]}, **_h(producer)
    )
    assert again.json["duplicates"] == 400 and _routes(db) == routes


def test_only_would_be_auto_accepts_are_audited(client, make, db):
    make.queue(audit_rate=1.0)
    producer = make.user("scientist", queues=["claims"])
    client.post(
        ITEMS,
        json={"items": [item("sure", "fraud", 0.97), item("unsure", "fraud", 0.6)]},
        **_h(producer),
    )
    routes = _routes(db)
    assert routes["sure"][:2] == ("audit", "pending")
    assert routes["unsure"][:2] == ("review", "pending")  # a person sees it anyway: no audit

    make.queue(name="no-audits", audit_rate=0)
    other_producer = make.user("scientist", queues=["no-audits"])
    r = client.post(
        "/api/v1/queues/no-audits/items",
        json={"items": [item(f"n-{i}", "fraud", 0.97) for i in range(50)]},
        **_h(other_producer),
    )
    assert r.json["routed"] == {"review": 0, "auto_accepted": 50, "audit": 0}


def test_an_audited_item_gets_a_label_with_source_audit(client, make, db):
    make.queue(audit_rate=0.5)
    producer = make.user("scientist", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    ids = [f"a-{i}" for i in range(40)]
    client.post(ITEMS, json={"items": [item(e, "fraud", 0.97) for e in ids]}, **_h(producer))
    audited = sorted(e for e in ids if audit_draw("claims", e) < 0.5)
    assert audited and len(audited) < len(ids)

    # Only audited items wait for a person; the reviewer answers two of them, one against
    # the model.
    decided = {}
    for answer in ("fraud", "legit"):
        claim = client.post("/api/v1/queues/claims/claims", **_h(reviewer)).json["claim"]
        ext = claim["item"]["external_id"]
        assert ext in audited and claim["item"]["route"]["decision"] == "audit"
        r = client.post(
            f"/api/v1/claims/{claim['token']}/decision", json={"label": answer}, **_h(reviewer)
        )
        assert r.status_code == 200
        assert r.json["label"]["value"] == answer and r.json["label"]["source"] == "audit"
        decided[ext] = answer

    sources = dict(db.all(select(Item.external_id, Label.source).join(Item)))
    assert {sources[e] for e in decided} == {"audit"}
    assert {sources[e] for e in ids if e not in audited} == {"auto"}
    exported = client.get("/api/v1/queues/claims/labels?format=jsonl", **_h(producer))
    rows = {r["external_id"]: r for r in map(json.loads, exported.data.decode().splitlines())}
    for ext, answer in decided.items():
        assert (rows[ext]["source"], rows[ext]["label"]) == ("audit", answer)
        assert rows[ext]["model_label"] == "fraud"


def _h(user):
    return {"headers": user["headers"]}
