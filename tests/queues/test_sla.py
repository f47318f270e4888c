"""Service levels: with `sla_hours`, claims come by priority, then items nearing their
deadline (oldest first), then the queue's order; the claim stays one statement over indexes;
breaches are counted (API, /metrics) and the queue list says the oldest item's age against
the SLA in plain words."""

from datetime import timedelta

import pytest
from sqlalchemy import bindparam, select, text, update

from app.db import session_scope
from app.models import Item, User, utcnow
from app.queues.service import get_queue
from app.queues.sla import NEARING_SHARE, sla_breaches, sla_by_day, sla_status, sla_words
from app.review.service import _claim_sql, claim_next
from tests.review.test_claim_order import _push, _scored
from tests.review.test_review_pages import login

SLA = 10  # hours: nearing after 7.5 h, late after 10 h


def _age(engine, hours_by_id: dict[str, float]):
    """Moves items' arrival back by the given hours."""
    now = utcnow()
    with session_scope(engine) as s:
        for ext, hours in hours_by_id.items():
            s.execute(
                update(Item)
                .where(Item.external_id == ext)
                .values(created_at=now - timedelta(hours=hours))
            )


def _claim_all(engine, user_name):
    with session_scope(engine) as s:
        queue = get_queue(session=s, name="claims")
        user = s.scalar(select(User).where(User.name == user_name))
        order = []
        while (claim := claim_next(session=s, queue=queue, user=user)) is not None:
            order.append(s.get(Item, claim.item_id).external_id)
        return order


def _queue(client, make, order, **policy):
    make.queue(audit_rate=0, auto_accept_threshold=0.99, order=order, **policy)
    producer = make.user("scientist", queues=["claims"])
    make.user("reviewer", queues=["claims"], name="rev")
    items = [
        _scored("sure-old", 0.85, 0.10),  # wide margin, nearing its deadline
        _scored("unsure-new", 0.41, 0.40),  # the least sure: first in uncertainty order
        _scored("mid-new", 0.60, 0.30),
        _scored("sure-late", 0.88, 0.05),  # wide margin, past its deadline
        _scored("sure-young", 0.80, 0.10),  # wide margin, half its SLA: not nearing yet
        _scored("vip", 0.90, 0.05, priority=5),  # higher priority beats any deadline
    ]
    _push(client, producer, items)
    _age(engine=make.engine, hours_by_id={"sure-old": 8, "sure-late": 12, "sure-young": 5})
    return producer


def test_nearing_items_come_after_priority_and_before_the_uncertainty_order(client, make, engine):
    _queue(client, make, "uncertainty", sla_hours=SLA)
    assert _claim_all(engine, "rev") == [
        "vip",
        "sure-late",  # oldest deadline first
        "sure-old",
        "unsure-new",  # then the queue's own order
        "mid-new",
        "sure-young",
    ]


def test_without_sla_the_uncertainty_order_is_unchanged(client, make, engine):
    _queue(client, make, "uncertainty")
    assert _claim_all(engine, "rev") == [
        "vip",
        "unsure-new",
        "mid-new",
        *sorted(["sure-old", "sure-late", "sure-young"], key=_rank_key(engine)),
    ]


def _rank_key(engine):
    with session_scope(engine) as s:
        ranks = dict(s.execute(select(Item.external_id, Item.uncertainty_rank)).all())
    return lambda e: (ranks[e], e)


def test_arrival_order_with_sla_takes_the_oldest_arrival_first(client, make, engine):
    _queue(client, make, "arrival", sla_hours=SLA)
    # Arrival order is by id; aged items (arrived "earlier") jump ahead once nearing.
    assert _claim_all(engine, "rev") == [
        "vip",
        "sure-late",
        "sure-old",
        "unsure-new",
        "mid-new",
        "sure-young",
    ]


def test_a_nearing_item_of_lower_priority_waits_behind_a_higher_priority(client, make, engine):
    make.queue(audit_rate=0, sla_hours=1)
    producer = make.user("scientist", queues=["claims"])
    make.user("reviewer", queues=["claims"], name="rev")
    _push(
        client,
        producer,
        [_scored("low-late", 0.5, 0.3, priority=0), _scored("high-new", 0.5, 0.3, priority=2)],
    )
    _age(engine, {"low-late": 30})
    assert _claim_all(engine, "rev") == ["high-new", "low-late"]


def test_a_skipped_or_already_reviewed_nearing_item_is_passed_over(client, make, engine):
    """The deadline probe applies the same filters as the order's: a reviewer's skips."""
    _queue(client, make, "uncertainty", sla_hours=SLA)
    with session_scope(engine) as s:
        queue = get_queue(session=s, name="claims")
        user = s.scalar(select(User).where(User.name == "rev"))
        late = s.scalar(select(Item.id).where(Item.external_id == "sure-late"))
        vip = s.scalar(select(Item.id).where(Item.external_id == "vip"))
        claim = claim_next(session=s, queue=queue, user=user, exclude_item_ids=[late, vip])
        assert s.get(Item, claim.item_id).external_id == "sure-old"


DEADLINE_INDEX = "ix_item_claim_deadline"
ORDER_INDEX = {"arrival": "ix_item_claim_order", "uncertainty": "ix_item_claim_uncertainty"}


@pytest.mark.parametrize("exclude", [False, True], ids=["plain", "with-skips"])
@pytest.mark.parametrize("order", ["arrival", "uncertainty"])
def test_the_sla_claim_is_one_statement_of_two_index_probes(client, make, engine, order, exclude):
    """EXPLAIN: the order's index for the first probe, the deadline index for the second,
    and no sort or scan of the queue's items."""
    make.queue(audit_rate=0, order=order, sla_hours=SLA)
    producer = make.user("scientist", queues=["claims"])
    _push(client, producer, [_scored(f"i{n}", 0.4 + n / 200, 0.3) for n in range(40)])
    sqlite = engine.dialect.name == "sqlite"
    sql = _claim_sql(sqlite, exclude, order, sla=True)
    assert sql.count("UPDATE item") == 1 and ";" not in sql
    stmt = text(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + sql)
    params = {
        "user_id": 1,
        "token": "t",
        "queue_id": 1,
        "expires_at": utcnow(),
        "nearing_before": utcnow(),
    }
    if exclude:
        stmt = stmt.bindparams(bindparam("excluded", expanding=True))
        params["excluded"] = [1, 2]
    with engine.begin() as conn:
        if not sqlite:
            conn.execute(text("ANALYZE item"))
            # A 40-row table fits one page (see test_claim_order): forbid the sequential
            # scan to see the plan the indexes make possible at a million rows.
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            conn.execute(text("SET LOCAL enable_bitmapscan = off"))
        plan = [str(row[-1] if sqlite else row[0]) for row in conn.execute(stmt, params)]
    shown = "\n".join(plan)
    if sqlite:
        assert f"INDEX {ORDER_INDEX[order]} (queue_id=? AND status=?)" in shown, shown
        assert (
            f"INDEX {DEADLINE_INDEX} (queue_id=? AND status=? AND priority=? AND created_at<?)"
            in shown
        ), shown
        assert "TEMP B-TREE" not in shown and "SCAN i" not in shown, shown
        assert "SCAN d" not in shown, shown
    else:
        assert f"using {ORDER_INDEX[order]} on item i" in shown, shown
        assert f"using {DEADLINE_INDEX} on item d" in shown, shown
        assert "Sort" not in shown and "Seq Scan on item" not in shown, shown


def test_breaches_count_late_decisions_and_late_waiting_items(client, make, engine):
    _queue(client, make, "arrival", sla_hours=SLA)
    lead = make.user("lead", queues=["claims"])
    rev = make.user("reviewer", queues=["claims"])
    url = "/api/v1/queues/claims/sla"
    body = client.get(url, headers=rev["headers"]).json
    # Waiting: sure-late (12 h) is past the 10 h deadline; sure-old (8 h) is nearing.
    assert body["sla_hours"] == SLA and body["nearing_share"] == NEARING_SHARE
    assert body["breaches"] == {"decided_late": 0, "waiting_late": 1, "total": 1}
    assert body["nearing"] == 2
    assert body["oldest_waiting_seconds"] == pytest.approx(12 * 3600, abs=120)
    assert "2 h past the 10 h target" in body["words"]
    # Deciding the late item turns its breach into a late decision; deciding a young one
    # adds none.
    for _ in range(3):  # vip, sure-late, sure-old
        claim = client.post("/api/v1/queues/claims/claims", headers=rev["headers"]).json["claim"]
        r = client.post(
            f"/api/v1/claims/{claim['token']}/decision",
            json={"label": "legit"},
            headers=rev["headers"],
        )
        assert r.status_code == 200, r.json
    body = client.get(url, headers=rev["headers"]).json
    assert body["breaches"] == {"decided_late": 1, "waiting_late": 0, "total": 1}
    assert body["nearing"] == 0
    # The queue read carries it too, and so does /metrics and the plain function.
    read = client.get("/api/v1/queues/claims", headers=lead["headers"]).json["sla"]
    assert read["breaches"] == body["breaches"] and read["sla_hours"] == SLA
    with session_scope(engine) as s:
        assert sla_breaches(session=s) == [
            {
                "queue": "claims",
                "sla_hours": SLA,
                "decided_late": 1,
                "waiting_late": 0,
                "nearing": 0,
            }
        ]
    with session_scope(engine) as s:
        days = sla_by_day(session=s, queue=get_queue(session=s, name="claims"), days=3)
    assert [d["day"] for d in days][-1] == utcnow().date().isoformat() and len(days) == 3
    assert days[-1]["decided"] == 3 and days[-1]["decided_late"] == 1
    assert days[0] == {"day": days[0]["day"], "decided": 0, "decided_late": 0}
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'loupe_sla_breaches{kind="decided_late",queue="claims"} 1.0' in metrics
    assert 'loupe_sla_breaches{kind="waiting_late",queue="claims"} 0.0' in metrics


def test_a_queue_without_sla_counts_no_breach(client, make, engine):
    _queue(client, make, "arrival")
    rev = make.user("reviewer", queues=["claims"])
    body = client.get("/api/v1/queues/claims/sla", headers=rev["headers"]).json
    assert body["sla_hours"] is None and body["breaches"]["total"] is None
    assert "no service level" in body["words"]
    with session_scope(engine) as s:
        assert sla_breaches(session=s) == []
        assert sla_status(session=s, queue=get_queue(session=s, name="claims"))["nearing"] is None


def test_sla_of_another_queue_is_404(client, make):
    make.queue(sla_hours=4)
    make.queue(name="other")
    stranger = make.user("lead", queues=["other"])
    assert client.get("/api/v1/queues/claims/sla", headers=stranger["headers"]).status_code == 404


def test_the_queue_list_says_the_oldest_age_against_the_sla(client, make):
    _queue(client, make, "arrival", sla_hours=SLA)
    rev = make.user("reviewer", queues=["claims"])
    login(client, rev)
    page = client.get("/queues").get_data(as_text=True)
    assert "12 h: 2 h past the 10 h target" in page


def test_sla_words():
    assert sla_words(age_seconds=None, sla_hours=4) == "Nothing is waiting."
    assert (
        sla_words(age_seconds=3600, sla_hours=4)
        == "The oldest item has waited 60 min of the 4 h target."
    )
    assert "nearing its deadline" in sla_words(age_seconds=3.5 * 3600, sla_hours=4)
    assert sla_words(age_seconds=4 * 86400, sla_hours=24) == (
        "The oldest item has waited 4 days: 3 days past the 24 h target."
    )


def test_concurrent_reviewers_with_an_sla_never_share_an_item(live_server, make, engine, db):
    """Six reviewers over real HTTP on a queue where a third of the items are nearing
    their deadline: the two-probe claim hands each item to one reviewer only."""
    import threading
    from collections import Counter

    from app.models import Claim, Review
    from tests.conftest import item
    from tests.review.test_concurrency import _call

    make.queue(audit_rate=0, retrain_after=0, order="uncertainty", sla_hours=SLA)
    producer = make.user("scientist", queues=["claims"])
    reviewers = [make.user("reviewer", queues=["claims"]) for _ in range(6)]
    n = 60
    status, body = _call(
        f"{live_server}/api/v1/queues/claims/items",
        body={"items": [item(f"c-{i}", "fraud", 0.4 + (i % 7) / 20) for i in range(n)]},
        token=producer["token"],
    )
    assert status == 200 and body["created"] == n
    _age(engine, {f"c-{i}": 8 + i / 100 for i in range(0, n, 3)})
    problems, decided, first = [], Counter(), []
    lock = threading.Lock()

    def review(reviewer):
        while True:
            status, body = _call(
                f"{live_server}/api/v1/queues/claims/claims", token=reviewer["token"]
            )
            if status == 204:
                return
            if status != 200:
                problems.append(("claim", status, body))
                return
            claim = body["claim"]
            with lock:
                first.append(claim["item"]["external_id"])
            status, body = _call(
                f"{live_server}/api/v1/claims/{claim['token']}/decision",
                body={"label": "legit"},
                token=reviewer["token"],
            )
            if status != 200:
                problems.append(("decide", status, body))
            else:
                with lock:
                    decided[claim["item"]["external_id"]] += 1

    threads = [threading.Thread(target=review, args=(r,)) for r in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not problems, problems[:5]
    assert len(decided) == n and set(decided.values()) == {1}
    assert db.count(Review) == n and db.count(Claim) == n
    # The nearing items (every third) were handed out before the others.
    nearing = {f"c-{i}" for i in range(0, n, 3)}
    # (up to one claim per reviewer may be in flight when another is recorded).
    assert set(first[: len(nearing) - len(reviewers)]) <= nearing
