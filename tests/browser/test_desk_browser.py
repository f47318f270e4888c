"""The lead's desk in a real browser: a lead decides a disagreement with the keyboard alone,
the card is swapped for the outcome (htmx), the queue list counts what still waits, the
page fits a 390 px phone, and axe-core finds nothing critical or serious."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.browser.test_layout_a11y_browser import DESK, PHONE, _serious
from tests.desk.conftest import Desk


def _waiting(client, make) -> Desk:
    desk = Desk(client, make).setup(reviewers=2, reviews_required=2)
    desk.push_ids("claim-17", "claim-18", score=0.7)
    a, b = desk.reviewers
    desk.answer(a, "legit", comment="Regular monthly payment <b>not bold</b>")
    desk.answer(b, "fraud")
    desk.escalate(a, reason="The note mentions a stolen card")
    return desk


def test_a_lead_decides_a_disagreement_with_the_keyboard(client, make, page_for, artifacts):
    desk = _waiting(client, make)
    page = page_for(desk.lead, "/queues", viewport=DESK)
    row = page.locator("tr", has_text="claims")
    expect(row.locator("td[data-label='Waiting for a lead']")).to_have_text("2")
    page.click("text=Lead's desk")
    expect(page.locator("h1")).to_contain_text("Waiting for a lead")
    cards = page.locator("article.desk-entry")
    expect(cards).to_have_count(2)
    first = cards.nth(0)
    expect(first).to_contain_text("Reviewers disagree")
    expect(first.locator(".desk-reviews")).to_contain_text(
        "Regular monthly payment <b>not bold</b>"
    )
    expect(first.locator(".desk-reviews .shown").first).to_contain_text("fraud 70%")
    expect(cards.nth(1)).to_contain_text("The note mentions a stolen card")
    page.screenshot(path=str(artifacts / "desk-1280.png"), full_page=True)

    # Keyboard only: focus the first label, arrow to the next, type the why, submit.
    first.locator("input[name=label]").first.focus()
    page.keyboard.press("ArrowRight")  # radio group: legit -> fraud
    page.keyboard.press("Tab")
    page.keyboard.type("The chargeback form is signed")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    done = page.locator("article.desk-entry.done")
    expect(done).to_contain_text("Decided claim-17: “fraud”")
    expect(page.locator("article.desk-entry:not(.done)")).to_have_count(1)
    label = desk.item("claim-17")["label"]
    assert label["value"] == "fraud" and label["source"] == "adjudicated"
    assert page.js_errors == []

    # The reviewer sees the outcome in My work.
    mine = page_for(desk.reviewers[0], "/me/reviews")
    outcome = mine.locator("tr[data-external-id='claim-17'] td.outcome")
    expect(outcome).to_contain_text("final: fraud")
    expect(outcome).to_contain_text(f"decided by {desk.lead['name']}")
    expect(outcome).to_contain_text("The chargeback form is signed")


def test_the_desk_fits_a_phone_and_passes_axe(client, make, page_for, artifacts):
    desk = _waiting(client, make)
    axe = Axe()
    for viewport in (DESK, PHONE):
        page = page_for(desk.lead, "/queues/claims/desk", viewport=viewport)
        expect(page.locator("article.desk-entry")).to_have_count(2)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], f"{width}px wide at {viewport['width']}px"
        assert _serious(axe.run(page)) == []
        if viewport is PHONE:
            page.screenshot(path=str(artifacts / "desk-390.png"), full_page=True)
    # A reviewer is refused the page.
    refused = page_for(desk.reviewers[0])
    response = refused.goto("/queues/claims/desk")
    assert response is not None and response.status == 403
