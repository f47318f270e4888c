"""No address answers 500 to a request a browser can make: every route of the app is asked
with GET and POST, logged in and not, with made-up path values (issue 8)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import item
from tests.review.test_review_pages import login

POST_ONLY_PAGES = [
    "/logout",
    "/queues/claims/undo",
    "/queues/claims/claims/some-token/decide",
    "/queues/claims/claims/some-token/skip",
    "/queues/claims/claims/some-token/escalate",
    "/queues/claims/claims/some-token/flag",
    "/queues/claims/claims/some-token/heartbeat",
    "/me/reviews/1/reopen",
    "/me/leave",
    "/me/presence",
]


@pytest.fixture
def reviewer_client(client, make):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    rev = make.user("lead", queues=["claims"])
    r = client.post(
        "/api/v1/queues/claims/items",
        json={"items": [item("e-1"), item("e-2")]},
        headers=producer["headers"],
    )
    assert r.status_code == 200
    login(client, rev)
    return client


@pytest.mark.parametrize("path", POST_ONLY_PAGES)
def test_get_on_a_post_only_address_is_a_405_page(reviewer_client, path):
    r = reviewer_client.get(path)
    assert r.status_code == 405, (path, r.status_code)
    assert "POST" in r.headers["Allow"]
    page = r.data.decode()
    # The normal error page, inside the app's layout, with a way back.
    assert "<h1>405</h1>" in page and "Back to your queues" in page and "Log out" in page


def _fill(rule) -> str:
    """The rule's path with a made-up value for each of its variables."""
    values = {"int": "1", "path": "claims/e-1", "default": "claims"}

    def one(match):
        converter = match.group(1) or "default"
        name = match.group(2)
        if name == "token":
            return "no-such-token"
        if name in ("version", "external_id"):
            return "e-1"
        return values.get(converter, "x")

    return re.sub(r"<(?:(\w+):)?(\w+)>", one, rule.rule)


@pytest.mark.parametrize("logged_in", [False, True])
def test_no_route_answers_500_to_a_plain_browser_request(app, client, make, logged_in):
    if logged_in:
        make.queue(audit_rate=0)
        login(client, make.user("lead", queues=["claims"]))
    asked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = _fill(rule)
        for method in ("GET", "POST"):
            # What a browser sends: a plain navigation, or a form post without a token.
            r = client.open(path, method=method, data={} if method == "POST" else None)
            asked += 1
            assert r.status_code < 500 or r.status_code == 503, (method, path, r.status_code)
    assert asked > 40
