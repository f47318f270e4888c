"""Sixteen reviewers at once on a queue that needs two reviews per item, over real HTTP:
no one answers an item twice, and every item ends with exactly two reviews, settled or
waiting for a lead."""

from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import func, select

from app.models import Item, Label, Review
from app.states import ItemStatus
from tests.conftest import item
from tests.review.test_concurrency import _call

THREADS = 16
ITEMS = 64
K = 2


def test_sixteen_reviewers_two_reviews_per_item(live_server, make, db):
    make.queue(audit_rate=0, retrain_after=0, reviews_required=K)
    producer = make.user("scientist", queues=["claims"])
    reviewers = [make.user("reviewer", queues=["claims"]) for _ in range(THREADS)]
    status, body = _call(
        f"{live_server}/api/v1/queues/claims/items",
        body={"items": [item(f"k-{i}", "fraud", 0.5) for i in range(ITEMS)]},
        token=producer["token"],
    )
    assert status == 200 and body["created"] == ITEMS

    lock = threading.Lock()
    answered: Counter = Counter()  # (reviewer, item) -> answers
    problems: list = []

    def review(n, reviewer):
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
            ext = claim["item"]["external_id"]
            if claim["item"]["reviews"]:
                problems.append(("not blind", ext, claim["item"]["reviews"]))
            # Most items agree; every fifth gets each reviewer's own view (disagreements).
            i = int(ext.split("-")[1])
            label = "fraud" if i % 5 else ["legit", "fraud", "duplicate"][n % 3]
            status, body = _call(
                f"{live_server}/api/v1/claims/{claim['token']}/decision",
                body={"label": label},
                token=reviewer["token"],
            )
            if status != 200:
                problems.append(("decide", status, body))
                return
            with lock:
                answered[(reviewer["name"], ext)] += 1

    threads = [threading.Thread(target=review, args=(n, r)) for n, r in enumerate(reviewers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert problems == []
    assert max(answered.values()) == 1
    assert sum(answered.values()) == ITEMS * K
    # The database agrees: one review per reviewer and item, K per item.
    pairs = db.all(
        select(Review.item_id, Review.user_id, func.count()).group_by(
            Review.item_id, Review.user_id
        )
    )
    assert len(pairs) == ITEMS * K and all(n == 1 for _, _, n in pairs)
    per_item = dict(db.all(select(Review.item_id, func.count()).group_by(Review.item_id)))
    assert len(per_item) == ITEMS and set(per_item.values()) == {K}
    statuses = Counter(s for (s,) in db.all(select(Item.status)))
    assert set(statuses) <= {ItemStatus.DONE, ItemStatus.ESCALATED}
    assert statuses[ItemStatus.DONE] == db.count(Label)
    assert statuses[ItemStatus.ESCALATED] > 0  # some of every fifth item disagreed
