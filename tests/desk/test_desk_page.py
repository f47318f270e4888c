"""The lead's desk page without a browser: htmx swaps, refusals, plain-form fallback."""

from __future__ import annotations

from app.models import Label
from tests.review.test_review_pages import login

ACTION = "/queues/claims/desk/adjudicate"


def test_the_desk_page_decides_refuses_and_falls_back_without_htmx(desk, make, app, db):
    desk.setup(reviewers=1)
    desk.push_ids("w1", "w2")
    desk.escalate(desk.reviewers[0], reason='<img src=x onerror="alert(1)">')
    desk.escalate(desk.reviewers[0])
    first, second = app.test_client(), app.test_client()
    csrf = login(first, desk.lead)
    other = make.user("lead", queues=["claims"])
    csrf2 = login(second, other)

    page = first.get("/queues/claims/desk").data.decode()
    assert page.count('class="desk-entry"') == 2
    assert "<img src=x onerror" not in page and "&lt;img src=x onerror" in page
    hx = {"HX-Request": "true", "X-CSRFToken": csrf}

    # A label the queue lacks: the card again, saying why; nothing stored.
    r = first.post(ACTION, data={"external_id": "w1", "label": "maybe"}, headers=hx)
    html = r.data.decode()
    assert r.status_code == 200 and "Not saved" in html and "not one of this queue" in html
    assert 'class="desk-entry"' in html and db.count(Label) == 0

    r = first.post(
        ACTION, data={"external_id": "w1", "label": "legit", "comment": "ok"}, headers=hx
    )
    assert "Decided w1: “legit”" in r.data.decode()
    # The other lead, a moment later, on the same card: told it no longer waits.
    r = second.post(
        ACTION,
        data={"external_id": "w1", "label": "fraud"},
        headers={"HX-Request": "true", "X-CSRFToken": csrf2},
    )
    assert (
        "not waiting for a lead" in r.data.decode() and 'class="desk-entry done"' in r.data.decode()
    )
    assert db.count(Label) == 1

    # Without htmx: a plain form post redirects back to the desk with a message.
    r = first.post(ACTION, data={"external_id": "w2", "label": "fraud", "csrf_token": csrf})
    assert r.status_code == 303 and r.headers["Location"].endswith("/queues/claims/desk")
    assert "Decided w2" in first.get("/queues/claims/desk").data.decode()
    # Without the CSRF token the form is refused.
    assert first.post(ACTION, data={"external_id": "w2", "label": "fraud"}).status_code == 400
