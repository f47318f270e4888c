"""The next item is leased and rendered ahead, so it shows the instant the reviewer answers."""

from sqlalchemy import select

from app.models import Claim, Item, Review
from tests.browser.test_review_browser import REVIEW, push, shown_id
from tests.conftest import item


def test_next_item_shows_before_the_server_answers(page_for, make, client, db):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    rev = make.user("reviewer", queues=["claims"])
    push(client, producer, [item(f"q-{i}", "fraud", 0.6, priority=10 - i) for i in range(4)])
    page = page_for(rev, REVIEW)
    assert shown_id(page) == "q-0"
    # q-1 is already leased to this reviewer, ahead of time, and nobody else can take it.
    states = dict(
        db.all(select(Item.external_id, Claim.state).join(Claim, Claim.item_id == Item.id))
    )
    assert states == {"q-0": "live", "q-1": "ahead"}

    held = []
    # Hold the decision in the browser: the server has not even seen it yet.
    page.route("**/decide", lambda route: held.append(route))
    page.keyboard.press("1")
    page.wait_for_function("document.querySelector('#review-item h2').textContent === 'q-1'")
    # The route handler runs when Playwright next dispatches events, which can come after
    # the swap on a busy machine: give it that turn before counting.
    for _ in range(250):  # up to 5 s on a busy machine
        if held:
            break
        page.wait_for_timeout(20)
    assert len(held) == 1 and db.count(Review) == 0
    assert page.locator("#review-item .preview").count() == 1
    # Then the decision goes through: the same item comes back live, with a new one ahead.
    held[0].continue_()
    page.wait_for_function(
        "document.querySelector('#review-item .flash').textContent.includes('Saved')"
    )
    assert page.locator("#review-item[data-external-id='q-1'] #decide-form").count() == 1
    assert db.count(Review) == 1
    states = dict(
        db.all(select(Item.external_id, Claim.state).join(Claim, Claim.item_id == Item.id))
    )
    assert states == {"q-0": "decided", "q-1": "live", "q-2": "ahead"}
    assert not page.js_errors
