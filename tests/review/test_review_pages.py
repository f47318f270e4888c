"""The review page: login, CSRF, escaping, and the htmx swap to the next item."""

import re

from sqlalchemy import select

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


def _action(html, name):
    return re.search(rf'hx-post="(/queues/claims/[^"]*{name})"', html).group(1)


def test_escalate_flag_undo_and_history_through_the_pages(client, make, db):
    from app.models import ItemEvent, Label

    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    rev = make.user("reviewer", queues=["claims"])
    client.post(
        "/api/v1/queues/claims/items",
        headers=producer["headers"],
        json={"items": [item(f"p-{i}", "fraud", 0.6, priority=9 - i) for i in range(4)]},
    )
    csrf = login(client, rev)
    hx = {"HX-Request": "true", "X-CSRFToken": csrf}
    html = client.get("/queues/claims/review").data.decode()
    assert "p-0" in html
    # Flag keeps the item; an empty comment is refused, in the notice (htmx swaps only 2xx).
    refused = client.post(_action(html, "flag"), data={"comment": ""}, headers=hx)
    assert refused.status_code == 200
    assert '<p id="notice" class="flash error" role="alert">Not flagged' in refused.data.decode()
    assert (
        client.post(_action(html, "flag"), data={"comment": "", "csrf_token": csrf}).status_code
        == 422
    )
    html = client.post(
        _action(html, "flag"), data={"comment": "odd IBAN <i>"}, headers=hx
    ).data.decode()
    assert "p-0" in html and "flagged: odd IBAN &lt;i&gt;" in html
    # Escalate sends it away with the reason.
    html = client.post(
        _action(html, "escalate"), data={"reason": "needs a lead"}, headers=hx
    ).data.decode()
    assert "Escalated p-0" in html and "p-1" in html
    # Decide with explicit model feedback, then undo brings the item back.
    html = client.post(
        _action(html, "decide"), data={"label": "legit", "model_feedback": "wrong"}, headers=hx
    ).data.decode()
    assert db.all(select(Label.value, Label.model_feedback)) == [("legit", "wrong")]
    assert "p-2" in html
    html = client.post("/queues/claims/undo", headers=hx).data.decode()
    assert "Undone: p-1" in html and 'data-external-id="p-1"' in html
    assert db.count(Label) == 0
    html = client.post(
        _action(html, "decide"), data={"label": "duplicate", "typed": "1"}, headers=hx
    ).data.decode()
    assert db.all(select(Label.value, Label.model_feedback)) == [("duplicate", "wrong")]
    kinds = [k for (k,) in db.all(select(ItemEvent.kind).order_by(ItemEvent.id))]
    assert kinds == ["flag", "escalate", "undo"]
    # My work lists the decision and can reopen it.
    page = client.get("/me/reviews").data.decode()
    assert 'data-external-id="p-1"' in page and "Reopen" in page
    review_id = re.search(r"/me/reviews/(\d+)/reopen", page).group(1)
    r = client.post(f"/me/reviews/{review_id}/reopen", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["Location"].endswith("/queues/claims/review")
    assert 'data-external-id="p-1"' in client.get("/queues/claims/review").data.decode()
    assert db.count(Label) == 0
    assert client.get("/me/reviews?since=nonsense").status_code == 200


def test_queue_home_shows_waiting_age_and_today(client, make):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    rev = make.user("reviewer", queues=["claims"])
    client.post(
        "/api/v1/queues/claims/items",
        headers=producer["headers"],
        json={"items": [item("h-1"), item("h-2")]},
    )
    claim = client.post("/api/v1/queues/claims/claims", headers=rev["headers"]).json["claim"]
    client.post(
        f"/api/v1/claims/{claim['token']}/decision", json={"label": "fraud"}, headers=rev["headers"]
    )
    login(client, rev)
    html = client.get("/queues").data.decode()
    assert "Oldest waiting" in html and "just now" in html
    row = re.search(r"<strong>claims</strong>.*?</tr>", html, re.S).group(0)
    cells = re.findall(r'<td class="count[^"]*"[^>]*>([^<]+)</td>', row)
    assert cells == ["1", "0", "just now", "1", "1"]  # 0: waiting for a lead


def test_login_redirect_stays_on_the_site(client, make):
    rev = make.user("reviewer")
    for target, expected in [
        ("/queues", "/queues"),
        ("/%5Cevil.example", "/queues"),
        ("//evil.example", "/queues"),
        ("https://evil.example", "/queues"),
    ]:
        page = client.get("/login")
        token = CSRF.search(page.data.decode()).group(1)
        r = client.post(
            f"/login?next={target}",
            data={"name": rev["name"], "password": rev["password"], "csrf_token": token},
        )
        assert r.headers["Location"] == expected, target
        client.post("/logout", data={"csrf_token": token})


def test_boosted_navigation_gets_the_whole_page(client, make):
    make.queue()
    rev = make.user("reviewer", queues=["claims"])
    login(client, rev)
    html = client.get("/queues/claims/review", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert b"<html" in html.data and b"Log out" in html.data


def test_a_typed_answer_has_a_form_of_its_own(client, make, db):
    """A candidate's button never carries the text typed in the answer field: the two are
    separate forms, so Enter in the field sends the typed answer and nothing else."""
    from app.models import Label

    make.queue(labels=None, audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    rev = make.user("reviewer", queues=["claims"])
    client.post(
        "/api/v1/queues/claims/items",
        headers=producer["headers"],
        json={"items": [item("t-1", "fraud", 0.5)]},
    )
    csrf = login(client, rev)
    html = client.get("/queues/claims/review").data.decode()
    candidates = html[html.index('id="decide-form"') : html.index('id="other-form"')]
    typed = html[
        html.index('id="other-form"') : html.index("</form>", html.index('id="other-form"'))
    ]
    assert 'name="label" value="fraud"' in candidates and "other-answer" not in candidates
    assert 'id="other-answer" name="label"' in typed and "candidate" not in typed
    action = re.search(r'hx-post="(/queues/claims/claims/[^"]+/decide)"', html).group(1)
    # What a browser sends when Enter is pressed in the text box: that form only.
    client.post(action, data={"label": "chargeback", "typed": "1", "csrf_token": csrf})
    assert db.all(select(Label.value, Label.model_feedback)) == [("chargeback", "all_wrong")]


def test_page_shows_evidence_similar_items_and_domain_formats(client, make, engine):
    from app.demo.seed import seed_demo

    login_info = seed_demo(engine, history=150, incoming=30, gold_rate=0)  # a known order
    reviewer = {"name": login_info.reviewer, "password": login_info.password}
    login(client, reviewer)
    html = client.get("/queues/claims/review").data.decode()
    assert "Why the model says" in html and "For it:" in html
    # Each value says how hard it pushed, in a word and a bar.
    assert re.search(r'class="push".*?\((strongly|somewhat|slightly)\)</small>', html, re.S)
    assert "Similar items already labelled" in html and "% alike" in html
    assert "Customer tenure" in html and "EUR" in html  # labels and units from the display spec
    assert re.search(r"\d+ [A-Z][a-z]{2} 2026", html)  # purchase date as a date, not ISO
