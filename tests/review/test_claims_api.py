"""Claims and decisions through the API, and directly through the domain functions."""

from datetime import timedelta

from sqlalchemy import select

from app.models import Claim, Item, Label, Outbox, Review, User, utcnow
from app.queues.service import get_queue
from app.review.service import claim_next, decide, expire_leases
from tests.conftest import item


def _push(client, producer, items):
    r = client.post(
        "/api/v1/queues/claims/items", json={"items": items}, headers=producer["headers"]
    )
    assert r.status_code == 200, r.json


def test_claim_decide_is_idempotent_and_conflicts_on_a_different_answer(client, make, db):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    _push(client, producer, [item("c-1", "fraud", 0.55)])
    r = client.post("/api/v1/queues/claims/claims", headers=reviewer["headers"])
    assert r.status_code == 200
    claim = r.json["claim"]
    assert claim["item"]["external_id"] == "c-1" and claim["item"]["status"] == "in_review"
    url = f"/api/v1/claims/{claim['token']}/decision"
    first = client.post(
        url, json={"label": "legit", "comment": "receipt attached"}, headers=reviewer["headers"]
    )
    assert first.status_code == 200 and first.json["status"] == "done"
    assert first.json["label"]["value"] == "legit" and first.json["label"]["source"] == "human"
    again = client.post(url, json={"label": "legit"}, headers=reviewer["headers"])
    assert again.status_code == 200
    other = client.post(url, json={"label": "fraud"}, headers=reviewer["headers"])
    assert other.status_code == 409
    assert db.count(Review) == 1
    assert db.count(Outbox) == 1
    lab = db.all(select(Label.model_label, Label.model_score, Label.model_version))
    assert lab == [("fraud", 0.55, "producer-1")]
    assert (
        client.post("/api/v1/queues/claims/claims", headers=reviewer["headers"]).status_code == 204
    )


def test_decision_validation_and_foreign_claims(client, make):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    alice = make.user("reviewer", queues=["claims"])
    bob = make.user("reviewer", queues=["claims"])
    _push(client, producer, [item("c-1", "fraud", 0.5)])
    token = client.post("/api/v1/queues/claims/claims", headers=alice["headers"]).json["claim"][
        "token"
    ]
    url = f"/api/v1/claims/{token}/decision"
    assert client.post(url, json={"label": "maybe"}, headers=alice["headers"]).status_code == 422
    assert client.post(url, json={}, headers=alice["headers"]).status_code == 422
    assert client.post(url, json={"label": 5}, headers=alice["headers"]).status_code == 422
    assert client.post(url, data="nope", headers=alice["headers"]).status_code == 422
    assert client.post(url, json={"label": "fraud"}, headers=bob["headers"]).status_code == 403
    assert (
        client.post(
            "/api/v1/claims/unknown/decision", json={"label": "fraud"}, headers=alice["headers"]
        ).status_code
        == 404
    )
    assert client.post(url, json={"label": "fraud"}, headers=alice["headers"]).status_code == 200


def test_expired_claim_is_gone_and_item_returns(client, make, session, db):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    alice = make.user("reviewer", queues=["claims"])
    bob = make.user("reviewer", queues=["claims"])
    _push(client, producer, [item("c-1", "fraud", 0.5)])
    token = client.post("/api/v1/queues/claims/claims", headers=alice["headers"]).json["claim"][
        "token"
    ]
    # Age the lease instead of sleeping through it.
    session.execute(Claim.__table__.update().values(expires_at=utcnow() - timedelta(seconds=1)))
    session.execute(
        Item.__table__.update().values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    session.commit()
    r = client.post(
        f"/api/v1/claims/{token}/decision", json={"label": "fraud"}, headers=alice["headers"]
    )
    assert r.status_code == 410 and r.json["error"] == "gone"
    assert db.scalar(select(Item.status)) == "pending"
    again = client.post("/api/v1/queues/claims/claims", headers=bob["headers"])
    assert again.status_code == 200 and again.json["claim"]["item"]["external_id"] == "c-1"


def test_release_returns_item_and_order_is_priority_then_age(client, make):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    rev = make.user("reviewer", queues=["claims"])
    _push(
        client,
        producer,
        [
            item("old", "fraud", 0.5),
            item("urgent", "fraud", 0.5, priority=5),
            item("new", "fraud", 0.5),
        ],
    )
    order = []
    for _ in range(3):
        claim = client.post("/api/v1/queues/claims/claims", headers=rev["headers"]).json["claim"]
        order.append(claim["item"]["external_id"])
        assert (
            client.delete(f"/api/v1/claims/{claim['token']}", headers=rev["headers"]).status_code
            == 204
        )
        # A released claim can no longer be decided.
        r = client.post(
            f"/api/v1/claims/{claim['token']}/decision",
            json={"label": "fraud"},
            headers=rev["headers"],
        )
        assert r.status_code == 410
        break
    assert order == ["urgent"]
    seen = [
        client.post("/api/v1/queues/claims/claims", headers=rev["headers"]).json["claim"]["item"][
            "external_id"
        ]
        for _ in range(3)
    ]
    # A skip is remembered, as on the review page: the skipped item comes back only once
    # nothing else is left.
    assert seen == ["old", "new", "urgent"]
    assert client.post("/api/v1/queues/claims/claims", headers=rev["headers"]).status_code == 204


def test_expire_leases_sweeps_every_queue(make, session):
    make.queue(audit_rate=0)
    make.user("reviewer", queues=["claims"], name="rita")
    from app.ingest.service import ingest_items, parse_rows

    queue = get_queue(session=session, name="claims")
    ingest_items(session=session, queue=queue, items=parse_rows([item("e-1")]))
    user = session.scalar(select(User).where(User.name == "rita"))
    claim = claim_next(session=session, queue=queue, user=user)
    assert claim is not None
    assert expire_leases(session=session, now=utcnow()) == 0
    assert expire_leases(session=session, now=utcnow() + timedelta(hours=1)) == 1
    assert session.get(Claim, claim.id).state == "expired"


def test_two_reviews_required_and_disagreement_escalates(make, session):
    make.queue(audit_rate=0, reviews_required=2)
    for name in ("ann", "ben", "cat"):
        make.user("reviewer", queues=["claims"], name=name)
    from app.ingest.service import ingest_items, parse_rows

    queue = get_queue(session=session, name="claims")
    ingest_items(session=session, queue=queue, items=parse_rows([item("agree"), item("split")]))
    users = {u.name: u for u in session.scalars(select(User))}

    def review(user, label):
        claim = claim_next(session=session, queue=queue, user=user)
        return decide(session=session, token=claim.token, user=user, label=label)

    first = review(users["ann"], "fraud")  # agree
    assert first.label is None and first.item.status == "pending"
    # Ann may not review the same item twice: she gets the other one.
    second = review(users["ann"], "fraud")
    assert second.item.external_id == "split"
    done = review(users["ben"], "fraud")
    assert done.item.external_id == "agree" and done.label.value == "fraud"
    assert sorted(done.label.reviewers) == ["ann", "ben"]
    split = review(users["cat"], "legit")
    assert split.item.status == "escalated" and split.label is None
