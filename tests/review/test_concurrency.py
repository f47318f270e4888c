"""Many reviewers at once, over real HTTP: no double claims, one decision per item."""

import json
import threading
import urllib.error
import urllib.request
from collections import Counter

from sqlalchemy import select

from app.models import Claim, Item, Review, TrainingExample
from tests.conftest import item

THREADS = 16
ITEMS = 500


def _call(url, method="POST", body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def test_sixteen_reviewers_claim_and_decide_five_hundred_items(live_server, make, db, run_jobs):
    make.queue(audit_rate=0, retrain_after=0)
    producer = make.user("scientist", queues=["claims"])
    reviewers = [make.user("reviewer", queues=["claims"]) for _ in range(THREADS)]
    status, body = _call(
        f"{live_server}/api/v1/queues/claims/items",
        body={"items": [item(f"k-{i}", "fraud", 0.5) for i in range(ITEMS)]},
        token=producer["token"],
    )
    assert status == 200 and body["created"] == ITEMS

    live = {}  # item -> token currently held; guarded by lock
    lock = threading.Lock()
    problems, decided = [], Counter()

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
            ext = claim["item"]["external_id"]
            with lock:
                if ext in live:
                    problems.append(("double claim", ext))
                live[ext] = claim["token"]
            label = ["legit", "fraud", "duplicate"][hash(ext) % 3]
            status, body = _call(
                f"{live_server}/api/v1/claims/{claim['token']}/decision",
                body={"label": label},
                token=reviewer["token"],
            )
            with lock:
                live.pop(ext, None)
            if status != 200:
                problems.append(("decide", status, body))
            else:
                decided[ext] += 1

    threads = [threading.Thread(target=review, args=(r,)) for r in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not problems, problems[:5]
    assert len(decided) == ITEMS and set(decided.values()) == {1}
    assert db.count(Review) == ITEMS
    assert db.count(Item, Item.status == "done") == ITEMS
    assert db.count(Claim) == ITEMS  # nobody was handed an item someone else held
    per_item = Counter(r[0] for r in db.all(select(Review.item_id)))
    assert set(per_item.values()) == {1}
    run_jobs()
    assert db.count(TrainingExample) == ITEMS
