"""The review page: login, CSRF, escaping, and the htmx swap to the next item."""

import re

from app.models import Review
from tests.conftest import item

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def login(client, user):
    page = client.get("/login")
    token = CSRF.search(page.data.decode()).group(1)
    r = client.post(
        "/login", data={"name": user["name"], "password": user["password"], "csrf_token": token}
    )
    assert r.status_code == 303, r.data
    return token


def test_login_required_and_wrong_password(client, make):
    make.queue()
    rev = make.user("reviewer", queues=["claims"])
    assert client.get("/queues").status_code == 302
    page = client.get("/login")
    token = CSRF.search(page.data.decode()).group(1)
    r = client.post("/login", data={"name": rev["name"], "password": "wrong", "csrf_token": token})
    assert r.status_code == 401 and b"wrong password" in r.data
    # A form without its CSRF token is refused.
    r = client.post("/login", data={"name": rev["name"], "password": rev["password"]})
    assert r.status_code in (400, 401) and b"/queues" not in r.headers.get("Location", "").encode()


def test_review_page_escapes_payload_and_swaps_to_next_item(client, make, db):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    rev = make.user("reviewer", queues=["claims"])
    hostile = {
        "note": "<script>alert('x')</script>",
        "link": "javascript:alert(1)",
        "site": "https://example.org/a?b=<i>",
    }
    client.post(
        "/api/v1/queues/claims/items",
        headers=producer["headers"],
        json={
            "items": [
                item("first", "fraud", 0.6, payload=hostile, priority=1),
                item("second", "legit", 0.6),
            ]
        },
    )
    csrf = login(client, rev)
    queues = client.get("/queues")
    assert b"Start reviewing" in queues.data
    page = client.get("/queues/claims/review")
    html = page.data.decode()
    assert page.status_code == 200
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert 'href="javascript:' not in html
    assert 'href="https://example.org/a?b=&lt;i&gt;"' in html
    assert "first" in html and 'data-key="1"' in html
    action = re.search(r'hx-post="(/queues/claims/claims/[^"]+/decide)"', html).group(1)
    # Without the CSRF header or field the decision is refused.
    assert client.post(action, data={"label": "fraud"}).status_code == 400
    swap = client.post(
        action, data={"label": "fraud"}, headers={"HX-Request": "true", "X-CSRFToken": csrf}
    )
    assert swap.status_code == 200
    fragment = swap.data.decode()
    assert fragment.startswith('<section id="review-item"')  # a fragment, not a page
    assert "second" in fragment and "Saved" in fragment
    assert "HX-Request" in swap.headers["Vary"]
    assert db.count(Review) == 1


def test_skip_moves_on_and_empty_queue_says_so(client, make):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    rev = make.user("reviewer", queues=["claims"])
    client.post(
        "/api/v1/queues/claims/items",
        headers=producer["headers"],
        json={"items": [item("one", priority=1), item("two")]},
    )
    csrf = login(client, rev)
    html = client.get("/queues/claims/review").data.decode()
    assert "one" in html
    skip = re.search(r'hx-post="(/queues/claims/claims/[^"]+/skip)"', html).group(1)
    after = client.post(skip, headers={"HX-Request": "true", "X-CSRFToken": csrf}).data.decode()
    assert "two" in after and "Skipped" in after
    other = make.user("reviewer", queues=["claims"])
    client.post("/logout", data={"csrf_token": csrf})
    login(client, other)
    # The skipped item went back: another reviewer gets it.
    assert "one" in client.get("/queues/claims/review").data.decode()
    client.post("/api/v1/queues/claims/claims", headers=producer["headers"])
    empty = make.user("reviewer", queues=["claims"])
    client2 = client.application.test_client()
    login(client2, empty)
    assert "Nothing to review" in client2.get("/queues/claims/review").data.decode()
