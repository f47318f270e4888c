"""The lead's desk tests' helpers: a queue, its people, and the API calls they make."""

from __future__ import annotations

import pytest

from tests.conftest import item


class Desk:
    """Calls the JSON API as the test's users (`make.user` dicts)."""

    def __init__(self, client, make):
        self.client = client
        self.make = make
        self.queue = "claims"

    def setup(self, *, reviewers=2, **policy):
        self.make.queue(self.queue, **{"audit_rate": 0, "retrain_after": 0, **policy})
        self.producer = self.make.user("scientist", queues=[self.queue])
        self.lead = self.make.user("lead", queues=[self.queue])
        self.reviewers = [self.make.user("reviewer", queues=[self.queue]) for _ in range(reviewers)]
        return self

    def push(self, *items):
        r = self.client.post(
            f"/api/v1/queues/{self.queue}/items",
            json={"items": list(items)},
            headers=self.producer["headers"],
        )
        assert r.status_code == 200, r.json
        return r.json

    def push_ids(self, *ids, label="fraud", score=0.6):
        return self.push(*[item(i, label, score) for i in ids])

    def claim(self, user):
        r = self.client.post(f"/api/v1/queues/{self.queue}/claims", headers=user["headers"])
        assert r.status_code in (200, 204), r.json
        return r.json["claim"] if r.status_code == 200 else None

    def decide(self, user, token, label, comment=None):
        body = {"label": label} | ({"comment": comment} if comment else {})
        r = self.client.post(f"/api/v1/claims/{token}/decision", json=body, headers=user["headers"])
        assert r.status_code == 200, r.json
        return r.json

    def answer(self, user, label, comment=None):
        """Claims the caller's next item and answers it; returns (external_id, answer)."""
        claim = self.claim(user)
        assert claim is not None, "nothing to claim"
        return claim["item"]["external_id"], self.decide(user, claim["token"], label, comment)

    def escalate(self, user, reason="needs a lead"):
        claim = self.claim(user)
        r = self.client.post(
            f"/api/v1/claims/{claim['token']}/escalate",
            json={"reason": reason},
            headers=user["headers"],
        )
        assert r.status_code == 200, r.json
        return claim["item"]["external_id"]

    def flag_and_answer(self, user, label, comment="looks odd"):
        claim = self.claim(user)
        r = self.client.post(
            f"/api/v1/claims/{claim['token']}/flag",
            json={"comment": comment},
            headers=user["headers"],
        )
        assert r.status_code == 200, r.json
        self.decide(user, claim["token"], label)
        return claim["item"]["external_id"]

    def adjudications(self, user=None):
        return self.client.get(
            f"/api/v1/queues/{self.queue}/adjudications", headers=(user or self.lead)["headers"]
        )

    def adjudicate(self, external_id, label, comment=None, user=None):
        body = {"label": label} | ({"comment": comment} if comment is not None else {})
        return self.client.post(
            f"/api/v1/queues/{self.queue}/items/{external_id}/adjudicate",
            json=body,
            headers=(user or self.lead)["headers"],
        )

    def item(self, external_id, user=None):
        r = self.client.get(
            f"/api/v1/queues/{self.queue}/items/{external_id}",
            headers=(user or self.lead)["headers"],
        )
        assert r.status_code == 200, r.json
        return r.json


@pytest.fixture
def desk(client, make):
    return Desk(client, make)
