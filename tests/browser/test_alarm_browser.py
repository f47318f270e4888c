"""The alarm in a real browser: a reviewer sees it above the item with no way to resume; a
lead types why and resumes auto-accept from the review page; axe-core finds nothing
critical or serious on the quality page while the alarm and the resume form are shown."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.browser.test_layout_a11y_browser import DESK, PHONE, _serious
from tests.conftest import item
from tests.trust.test_alarms import QUALITY, _answer, _push


def test_the_alarm_shows_and_a_lead_resumes_auto_accept_from_the_review_page(
    client, make, page_for
):
    make.queue(audit_rate=1.0, alarm_min_audits=3)
    producer = make.user("scientist", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    lead = make.user("lead", queues=["claims"])
    _push(client, producer, [item(f"a-{i}", "fraud", 0.97) for i in range(8)])
    for _ in range(3):
        _answer(client, reviewer, "legit")
    assert client.get(QUALITY, headers=lead["headers"]).json["auto_accept"]["paused"]

    seen = page_for(reviewer, "/queues/claims/review")
    banner = seen.locator(".queue-alarms")
    expect(banner).to_contain_text("Alarm: precision below target")
    expect(banner).to_contain_text("Auto-accept is paused")
    expect(seen.locator("#resume-auto-accept")).to_have_count(0)

    page = page_for(lead, "/queues/claims/review")
    expect(page.locator("#resume-auto-accept")).to_be_visible()
    page.fill(".resume-auto-accept input[name=reason]", "checked the last audits by hand")
    with page.expect_navigation():
        page.click("#resume-auto-accept")
    assert page.url.endswith("/queues/claims/review")
    expect(page.locator(".flash.ok")).to_contain_text("Auto-accept resumed")
    # The alarm stays until audits clear it; the pause and its button are gone.
    expect(page.locator(".queue-alarms")).to_contain_text("Alarm: precision below target")
    expect(page.locator(".queue-alarms .paused")).to_have_count(0)
    auto = client.get(QUALITY, headers=lead["headers"]).json["auto_accept"]
    assert auto["paused"] is False
    page.goto("/queues/claims/quality")
    expect(page.locator("#queue-events")).to_contain_text("checked the last audits by hand")
    assert page.js_errors == [] and seen.js_errors == []


def test_axe_finds_nothing_serious_on_the_quality_page_with_an_alarm(client, make, page_for):
    make.queue(audit_rate=1.0, alarm_min_audits=3)
    producer = make.user("scientist", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    lead = make.user("lead", queues=["claims"])
    _push(client, producer, [item(f"a-{i}", "fraud", 0.97) for i in range(8)])
    for _ in range(3):
        _answer(client, reviewer, "legit")
    axe = Axe()
    for viewport in (DESK, PHONE):
        page = page_for(lead, "/queues/claims/quality", viewport=viewport)
        expect(page.locator("#resume-auto-accept")).to_be_visible()
        assert _serious(axe.run(page)) == []
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= viewport["width"], f"scrolls sideways at {viewport['width']} px"
