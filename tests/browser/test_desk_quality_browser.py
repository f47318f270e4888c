"""The Reviewers page (gold items, agreement) and My stats in a real browser, on the demo:
the figures show, a lead marks a gold item with the page's control, and screenshots at
1280 and 390 px go to the artefacts."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from app.models import GoldItem, Item
from tests.browser.test_layout_a11y_browser import PHONE, demo  # noqa: F401


def test_the_demo_shows_gold_figures_and_a_lead_marks_an_item(demo, page_for, db, artifacts):  # noqa: F811
    page = page_for(demo, "/queues/claims/reviewers")
    expect(page.locator("#gold-accuracy")).to_contain_text("95% interval")
    expect(page.locator("#automation-bias")).to_contain_text("n = ")
    expect(page.locator("#gold-reviewers")).to_contain_text("kim")
    expect(page.locator("#gold-items tbody tr")).to_have_count(8)
    expect(page.locator("#alpha")).to_contain_text("too few items")
    page.screenshot(path=str(artifacts / "desk-reviewers-1280.png"), full_page=True)
    waiting = db.scalar(
        select(Item.external_id).where(Item.status == "pending").order_by(Item.id).limit(1)
    )
    page.fill("#mark-gold input[name=external_id]", waiting)
    page.select_option("#mark-gold select[name=label]", "fraud")
    with page.expect_navigation():
        page.click("#mark-gold button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text(f"{waiting} is a gold item now")
    expect(page.locator("#gold-items tbody tr")).to_have_count(9)
    assert db.count(GoldItem) == 9
    phone = page_for(demo, "/me/stats", viewport=PHONE)
    expect(phone.locator("h1")).to_have_text("My stats")
    phone.screenshot(path=str(artifacts / "desk-my-stats-390.png"), full_page=True)
    narrow = page_for(demo, "/queues/claims/reviewers", viewport=PHONE)
    narrow.screenshot(path=str(artifacts / "desk-reviewers-390.png"), full_page=True)
    assert page.js_errors == [] and phone.js_errors == [] and narrow.js_errors == []
