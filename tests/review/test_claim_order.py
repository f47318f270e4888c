"""The queue's claim order: `arrival` (priority, then age) or `uncertainty` (priority, then
the least margin first, spread by a hash inside coarse margin buckets); both one index probe."""

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import bindparam, select, text

from app.db import session_scope
from app.learning.registry import activate
from app.learning.rescoring import hand_over_rescoring
from app.learning.scoring import load_version
from app.models import UNRANKED, Claim, Item, ModelVersion, Prediction, Queue, User, utcnow
from app.queues.order import BUCKET_WIDTH, margin_of, rank_of, uncertainty_rank
from app.queues.service import get_queue
from app.review.service import _claim_sql, claim_next
from tests.learning.test_rescoring import _waiting_items_and_two_versions

# (external id, top score, runner-up score), in arrival order: arrival order is neither
# margin order nor bucket order.
SCORED = [
    ("wide-a", 0.80, 0.15),  # margin 0.65
    ("tight-a", 0.45, 0.44),  # 0.01
    ("mid-a", 0.60, 0.30),  # 0.30
    ("tight-b", 0.46, 0.43),  # 0.03
    ("tight-c", 0.42, 0.418),  # 0.002
    ("wide-b", 0.85, 0.10),  # 0.75
    ("tight-d", 0.47, 0.43),  # 0.04
    ("mid-b", 0.62, 0.30),  # 0.32
    ("tight-e", 0.44, 0.42),  # 0.02
    ("tight-f", 0.455, 0.41),  # 0.045
]
TIGHT = [e for e, *_ in SCORED if e.startswith("tight")]


def _scored(external_id, top, second, **extra):
    rest = round(1 - top - second, 4)
    return {
        "external_id": external_id,
        "payload": {"amount": 10},
        "prediction": {
            "model_version": "producer-1",
            "candidates": [
                {"label": "fraud", "score": top},
                {"label": "legit", "score": second},
                {"label": "duplicate", "score": rest},
            ],
        },
        **extra,
    }


def _hash_order(ids):
    """The spread inside one margin bucket, computed here from its definition."""
    key = {
        e: int.from_bytes(hashlib.blake2b(e.encode(), digest_size=8).digest(), "big") for e in ids
    }
    return sorted(ids, key=lambda e: key[e] % (1 << 24))


def _push(client, producer, items):
    r = client.post(
        "/api/v1/queues/claims/items", json={"items": items}, headers=producer["headers"]
    )
    assert r.status_code == 200, r.json
    return r.json


def _queue_with_items(client, make, order):
    """A queue in `order` holding SCORED, two items without scores (one with a rule's
    answer, one with nothing) arriving in between, and one urgent wide-margin item."""
    make.queue(
        audit_rate=0,
        order=order,
        rules=[{"name": "big", "field": "amount", "op": ">", "value": 1000, "label": "fraud"}],
    )
    producer = make.user("scientist", queues=["claims"])
    items = [_scored(*row) for row in SCORED]
    items.insert(3, {"external_id": "unscored-rule", "payload": {"amount": 5000}})
    items.insert(6, {"external_id": "unscored-none", "payload": {"amount": 5}})
    items.append(_scored("urgent-wide", 0.88, 0.05, priority=5))
    body = _push(client, producer, items)
    assert body["created"] == len(items) and body["routed"]["review"] == len(items)
    return producer, [i["external_id"] for i in items]


def _claim_all(engine, user_name="reviewer"):
    with session_scope(engine) as s:
        queue = get_queue(session=s, name="claims")
        user = s.scalar(select(User).where(User.name == user_name))
        order = []
        while (claim := claim_next(session=s, queue=queue, user=user)) is not None:
            order.append(s.get(Item, claim.item_id).external_id)
        return order


def test_uncertainty_order_is_least_margin_first_spread_inside_a_bucket(client, make, engine, db):
    _queue_with_items(client, make, "uncertainty")
    make.user("reviewer", queues=["claims"], name="reviewer")
    db_ranks = dict(db.all(select(Item.external_id, Item.uncertainty_rank)))
    assert db_ranks["unscored-rule"] == db_ranks["unscored-none"] == UNRANKED
    order = _claim_all(engine)
    # Priority first; then every item of the lowest margin bucket (0-0.05), then 0.30-0.35,
    # then 0.65-0.80; items with no scores last, in arrival order.
    assert order[0] == "urgent-wide"
    assert set(order[1:7]) == set(TIGHT)
    assert set(order[7:9]) == {"mid-a", "mid-b"}
    assert set(order[9:11]) == {"wide-a", "wide-b"}
    assert order[11:] == ["unscored-rule", "unscored-none"]
    # Diversity: inside the lowest bucket the order is the hash's, not the margin's (which
    # would be tight-c, tight-a, tight-e, tight-b, tight-d, tight-f).
    by_margin = sorted(TIGHT, key=lambda e: next(t - s for x, t, s in SCORED if x == e))
    assert order[1:7] == _hash_order(TIGHT) != by_margin
    assert order[7:9] == _hash_order(["mid-a", "mid-b"])


def test_arrival_order_is_unchanged_priority_then_age(client, make, engine):
    _, arrived = _queue_with_items(client, make, "arrival")
    make.user("reviewer", queues=["claims"], name="reviewer")
    assert _claim_all(engine) == ["urgent-wide", *arrived[:-1]]


def test_skips_and_expired_leases_keep_their_place_in_uncertainty_order(client, make, session):
    make.queue(audit_rate=0, order="uncertainty")
    producer = make.user("scientist", queues=["claims"])
    rev = make.user("reviewer", queues=["claims"])
    other = make.user("reviewer", queues=["claims"])
    _push(
        client,
        producer,
        [_scored("sure", 0.85, 0.1), _scored("unsure", 0.41, 0.40), _scored("mid", 0.6, 0.3)],
    )
    url = "/api/v1/queues/claims/claims"
    first = client.post(url, headers=rev["headers"]).json["claim"]
    assert first["item"]["external_id"] == "unsure"
    # Skipped (given back over the API): passed over by this reviewer's next claims...
    assert (
        client.delete(f"/api/v1/claims/{first['token']}", headers=rev["headers"]).status_code == 204
    )
    seen = [
        client.post(url, headers=rev["headers"]).json["claim"]["item"]["external_id"]
        for _ in range(3)
    ]
    assert seen == ["mid", "sure", "unsure"]
    # ... while someone else is offered it first. Their lease runs out: it is first again.
    taken = client.post(url, headers=other["headers"])
    assert taken.status_code == 204  # rev holds all three
    session.execute(Claim.__table__.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    session.execute(
        Item.__table__.update().values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    session.commit()
    again = client.post(url, headers=other["headers"]).json["claim"]
    assert again["item"]["external_id"] == "unsure"


def test_order_policy_is_validated(client, make):
    make.queue(audit_rate=0)
    lead = make.user("admin", queues=["claims"])
    url = "/api/v1/queues/claims/policy"
    for bad in (
        "random",
        "",
        None,
        1,
        ["uncertainty"],
        "UNCERTAINTY",
        "uncertainty; DROP TABLE item",
    ):
        r = client.patch(url, json={"order": bad}, headers=lead["headers"])
        assert r.status_code == 422, bad
        assert r.json["error"] == "validation_failed"
        assert any(d["field"] == "policy.order" for d in r.json["details"])
    assert (
        client.get("/api/v1/queues/claims", headers=lead["headers"]).json["policy"]["order"]
        == "arrival"
    )
    r = client.patch(url, json={"order": "uncertainty"}, headers=lead["headers"])
    assert r.status_code == 200 and r.json["policy"]["order"] == "uncertainty"
    r = client.post(
        "/api/v1/queues",
        json={"name": "other", "labels": ["a", "b"], "policy": {"order": "sideways"}},
        headers=lead["headers"],
    )
    assert r.status_code == 422 and any(d["field"].endswith("order") for d in r.json["details"])


def test_re_ingesting_keeps_the_rank_of_the_stored_prediction(client, make, db):
    make.queue(audit_rate=0, order="uncertainty")
    producer = make.user("scientist", queues=["claims"])
    _push(client, producer, [_scored("x", 0.45, 0.44)])
    before = db.scalar(select(Item.uncertainty_rank))
    body = _push(client, producer, [_scored("x", 0.9, 0.05)])
    assert body["duplicates"] == 1
    assert db.scalar(select(Item.uncertainty_rank)) == before
    (cands,) = db.all(select(Prediction.candidates))[0]
    assert before == rank_of(cands, None, "x") < 1 << 24  # the lowest bucket


def test_rank_function_edges():
    assert margin_of(None) is None
    assert margin_of([{"label": "a", "score": None}]) is None  # a rule's answer
    assert margin_of([{"label": "a", "score": 0.7}]) == pytest.approx(0.7)
    assert margin_of([{"label": "a", "score": 0.3}, {"label": "b", "score": 0.6}]) == pytest.approx(
        0.3
    )
    # A conformal set holding the top answer alone carries the margin in its detail.
    assert margin_of([{"label": "a", "score": 0.9}], {"set_size": 1, "margin": 0.85}) == 0.85
    assert uncertainty_rank(None, "x") == uncertainty_rank(float("nan"), "x") == UNRANKED
    assert uncertainty_rank(0.0, "x") < uncertainty_rank(BUCKET_WIDTH, "x") < UNRANKED
    assert uncertainty_rank(1.0, "x") < UNRANKED and uncertainty_rank(5.0, "x") == uncertainty_rank(
        1.0, "x"
    )
    assert uncertainty_rank(0.01, "x") == uncertainty_rank(0.04, "x")  # same bucket, same key


INDEX_FOR = {"arrival": "ix_item_claim_order", "uncertainty": "ix_item_claim_uncertainty"}


@pytest.mark.parametrize("exclude", [False, True], ids=["plain", "with-skips"])
@pytest.mark.parametrize("order", ["arrival", "uncertainty"])
def test_each_order_is_one_index_probe_without_a_sort(client, make, engine, order, exclude):
    """The claim statement's plan on this database: the order's index, and no sort over the
    queue's items (a sort would read every waiting item; the index reads one)."""
    make.queue(audit_rate=0, order=order)
    producer = make.user("scientist", queues=["claims"])
    _push(client, producer, [_scored(f"i{n}", 0.4 + n / 200, 0.3) for n in range(40)])
    sqlite = engine.dialect.name == "sqlite"
    stmt = text(
        ("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + _claim_sql(sqlite, exclude, order)
    )
    params = {"user_id": 1, "token": "t", "queue_id": 1, "expires_at": utcnow()}
    if exclude:
        stmt = stmt.bindparams(bindparam("excluded", expanding=True))
        params["excluded"] = [1, 2]
    with engine.begin() as conn:
        if not sqlite:
            conn.execute(text("ANALYZE item"))
            # A 40-row table fits one page, where a sequential scan is cheapest whatever
            # the order; at a million rows it is not. Forbidding it shows the plan the
            # index makes possible, and still lets the planner add a Sort if the index
            # cannot give the order.
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            conn.execute(text("SET LOCAL enable_bitmapscan = off"))
        plan = [str(row[-1] if sqlite else row[0]) for row in conn.execute(stmt, params)]
    shown = "\n".join(plan)
    if sqlite:
        assert f"USING COVERING INDEX {INDEX_FOR[order]} (queue_id=? AND status=?)" in shown, shown
        assert "TEMP B-TREE" not in shown and "SCAN i" not in shown, shown
    else:
        assert f"Index Only Scan using {INDEX_FOR[order]} on item i" in shown or (
            f"Index Scan using {INDEX_FOR[order]} on item i" in shown
        ), shown
        assert "Sort" not in shown and "Seq Scan on item" not in shown, shown


def _waiting(db):
    """{external id: (status, rank, newest prediction's candidates, detail, version)}."""
    newest = {}
    for item_id, cands, detail, version in db.all(
        select(
            Prediction.item_id, Prediction.candidates, Prediction.detail, Prediction.model_version
        ).order_by(Prediction.id)
    ):
        newest[item_id] = (cands, detail, version)
    return {
        ext: (status, rank, *newest[item_id])
        for item_id, ext, status, rank in db.all(
            select(Item.id, Item.external_id, Item.status, Item.uncertainty_rank).where(
                Item.status.in_(("pending", "in_review"))
            )
        )
    }


def test_scoring_and_re_scoring_keep_the_rank_in_step(make, engine, db, redis, run_jobs):
    """The queue's model ranks items as they arrive; after a promotion the re-scoring job
    (a real RQ worker) moves every waiting item to the new model's place, and leaves the
    item a reviewer holds where it was."""
    queue_id, (v1, v1_name), (v2, v2_name) = _waiting_items_and_two_versions(make, engine)
    with session_scope(engine) as s:
        queue = s.get(Queue, queue_id)
        queue.policy = {**queue.policy, "order": "uncertainty"}
    before = _waiting(db)
    assert len(before) == 12
    for ext, (_, rank, cands, detail, version) in before.items():
        assert version == v1_name and rank == rank_of(cands, detail, ext) < UNRANKED
    # Claimed first: the item with the smallest rank. It stays held during the re-scoring.
    held = _claim_all(engine, user_name="reviewer1")[0]
    assert held == min(before, key=lambda e: before[e][1])
    with session_scope(engine) as s:  # give back all but the first
        s.execute(
            Item.__table__.update()
            .where(Item.external_id != held, Item.status == "in_review")
            .values(status="pending", lease_owner_id=None, lease_token=None, lease_expires_at=None)
        )

    with session_scope(engine) as s:
        activate(session=s, version=s.get(ModelVersion, v2), by="test")
    hand_over_rescoring(engine, redis, version_id=v2)
    run_jobs()

    after = _waiting(db)
    assert after[held][1:] == before[held][1:]  # untouched while held
    with session_scope(engine) as s:
        model = load_version(s, s.get(ModelVersion, v2))
    payloads = dict(db.all(select(Item.external_id, Item.payload)))
    moved = 0
    for ext, (status, rank, cands, detail, version) in after.items():
        if ext == held:
            continue
        assert status == "pending" and version == v2_name
        # The margin over every answer's probability, and the rank's bucket from it.
        p = sorted(model.predict_proba([payloads[ext]])[0], reverse=True)
        assert detail["margin"] == pytest.approx(p[0] - p[1], abs=1e-4)
        assert rank >> 24 == int(detail["margin"] / BUCKET_WIDTH + 1e-9)
        assert rank == rank_of(cands, detail, ext)
        moved += rank != before[ext][1]
    assert moved > 0  # v2 reads other features: some items changed place
