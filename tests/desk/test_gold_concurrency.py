"""Gold items under concurrent claims over real HTTP: several reviewers hold one gold item
at once, and no reviewer (even claiming from two tabs at once) answers one twice."""

import threading
from collections import Counter

from sqlalchemy import func, select

from app.models import GoldItem, Item, Label, Review
from app.states import ItemStatus
from tests.conftest import item
from tests.review.test_concurrency import _call

REVIEWERS = 6
GOLD = 3
ORDINARY = 30


def test_reviewers_claiming_at_once_answer_each_gold_item_once(live_server, make, db):
    make.queue(audit_rate=0, retrain_after=0, gold_rate=1)
    producer = make.user("scientist", queues=["claims"])
    reviewers = [make.user("reviewer", queues=["claims"]) for _ in range(REVIEWERS)]
    batch = [item(f"o-{i}", "fraud", 0.5) for i in range(ORDINARY)]
    batch += [item(f"x-{i}", "fraud", 0.5, gold_label="legit") for i in range(GOLD)]
    status, body = _call(
        f"{live_server}/api/v1/queues/claims/items", body={"items": batch}, token=producer["token"]
    )
    assert status == 200 and body["created"] == ORDINARY + GOLD
    problems = []

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
            status, body = _call(
                f"{live_server}/api/v1/claims/{body['claim']['token']}/decision",
                body={"label": "legit"},
                token=reviewer["token"],
            )
            if status != 200:
                problems.append(("decision", status, body))

    # Two threads per reviewer: the same person claiming from two tabs at once.
    threads = [threading.Thread(target=review, args=(r,)) for r in reviewers for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert problems == []
    gold = {r[0] for r in db.all(select(GoldItem.item_id))}
    answers = Counter(
        {
            (user_id, item_id): n
            for user_id, item_id, n in db.all(
                select(Review.user_id, Review.item_id, func.count()).group_by(
                    Review.user_id, Review.item_id
                )
            )
        }
    )
    assert set(answers.values()) == {1}
    # Every reviewer answered every gold item (the stream ends only when none is left)...
    assert sum(1 for (_u, i) in answers if i in gold) == REVIEWERS * GOLD
    # ...and every ordinary item was answered once, into a label.
    assert sum(1 for (_u, i) in answers if i not in gold) == ORDINARY
    assert db.count(Label) == ORDINARY and db.count(Label, Label.item_id.in_(gold)) == 0
    assert db.count(Item, Item.status == ItemStatus.GOLD) == GOLD
