"""The policy page in a real browser, by keyboard: a lead changes the threshold, previews
what it would do on recent items, meets an error next to its field (nothing saved), saves,
and sees the change in the history after a reload; at 390 px nothing scrolls sideways and
axe-core finds nothing critical or serious."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect
from sqlalchemy import select

from app.models import Queue
from tests.browser.test_layout_a11y_browser import PHONE, _serious
from tests.conftest import item

PAGE = "/queues/claims/policy"


def _queue(client, make):
    make.queue(audit_rate=0, auto_accept_threshold=0.99)
    producer = make.user("scientist", queues=["claims"])
    items = [item(f"p-{i}", "fraud", round(0.55 + i * 0.02, 2)) for i in range(20)]
    r = client.post(
        "/api/v1/queues/claims/items", json={"items": items}, headers=producer["headers"]
    )
    assert r.status_code == 200


def _policy(db):
    return db.scalar(select(Queue.policy).where(Queue.name == "claims"))


def test_a_lead_edits_previews_saves_and_sees_the_history(client, make, db, page_for, artifacts):
    _queue(client, make)
    lead = make.user("lead", queues=["claims"], name="lena")
    page = page_for(lead, PAGE)
    threshold = page.locator("#field-auto_accept_threshold")
    threshold.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("0.8")
    page.keyboard.press("Tab")  # to min_margin
    page.keyboard.press("Control+A")
    page.keyboard.type("0")
    page.locator("#preview-policy").focus()
    page.keyboard.press("Enter")
    summary = page.locator("#preview-summary")
    expect(summary).to_contain_text("auto-accept would take 35% (now 0%)")
    expect(summary).to_contain_text("65 reviews per 100 items (now 100)")
    assert _policy(db)["auto_accept_threshold"] == 0.99  # a preview saves nothing

    # A bad value next to the good ones: the page comes back as typed, the error beside
    # its field, nothing saved.
    page.fill("#field-sla_hours", "-2")
    with page.expect_navigation():
        page.locator("#save-policy").focus()
        page.keyboard.press("Enter")
    expect(page.locator("#error-sla_hours")).to_contain_text("greater than 0")
    expect(page.locator("#field-sla_hours")).to_be_focused()  # the keyboard lands on it
    expect(page.locator("#policy-form-error")).to_contain_text("Nothing was saved")
    expect(page.locator("#field-auto_accept_threshold")).to_have_value("0.8")
    assert _policy(db)["auto_accept_threshold"] == 0.99 and _policy(db)["sla_hours"] is None

    page.fill("#field-sla_hours", "12")
    with page.expect_navigation():
        page.locator("#save-policy").press("Enter")
    expect(page.locator(".flash.ok")).to_contain_text("Policy saved")
    history = page.locator("#policy-history")
    expect(history).to_contain_text("by lena (policy page)")
    expect(history).to_contain_text("auto_accept_threshold: 0.99 → 0.8")
    expect(history).to_contain_text("sla_hours: null → 12.0")
    saved = _policy(db)
    assert saved["auto_accept_threshold"] == 0.8 and saved["min_margin"] == 0
    assert saved["sla_hours"] == 12
    page.screenshot(path=artifacts / "policy-page.png", full_page=True)

    # On reload the form shows the saved policy, and the history is still there.
    page.reload()
    expect(page.locator("#field-sla_hours")).to_have_value("12.0")
    expect(page.locator("#policy-history li").first).to_contain_text("lena")
    assert page.js_errors == []


def test_the_policy_page_at_390px_with_a_preview(client, make, page_for, artifacts):
    _queue(client, make)
    lead = make.user("lead", queues=["claims"])
    page = page_for(lead, PAGE, viewport=PHONE)
    page.fill("#field-auto_accept_threshold", "0.8")
    page.click("#preview-policy")
    expect(page.locator("#preview-result")).to_be_visible()
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= PHONE["width"], f"scrolls sideways at {PHONE['width']} px"
    assert _serious(Axe().run(page)) == []
    page.screenshot(path=artifacts / "policy-page-390.png", full_page=True)
    assert page.js_errors == []
