"""The failed jobs page in a real browser (headless Chromium, Playwright, the app on
`live_server`): an admin finds it from the queue list, sees a parked job with its error,
retries it, and the row follows the job until it is done."""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from app.models import TrainingExample
from tests.browser.test_layout_a11y_browser import _serious
from tests.learning.test_parking import ATTEMPTS, fix_row, park

PHONE = {"width": 390, "height": 844}


@pytest.fixture(autouse=True)
def few_attempts(app, monkeypatch):
    monkeypatch.setattr(app.config["LOUPE_SETTINGS"], "outbox_max_attempts", ATTEMPTS)


def test_an_admin_retries_a_parked_job_from_the_page(
    page_for, client, make, db, engine, redis, run_jobs, artifacts
):
    outbox_id, _ = park(client, make, engine, redis, run_jobs, db)
    admin = make.user("admin")
    page = page_for(admin, "/queues")
    expect(page.locator("main")).to_contain_text("Failed jobs: 1 parked")
    page.get_by_role("link", name="Failed jobs").click()
    expect(page).to_have_url(re.compile(r"/admin/jobs$"))
    row = page.locator(f"#job-{outbox_id}")
    expect(row).to_contain_text("LookupError: outbox row")
    expect(row.locator("td.count")).to_have_text(str(ATTEMPTS))
    page.screenshot(path=artifacts / "failed-jobs.png", full_page=True)
    assert _serious(Axe().run(page)) == []

    fix_row(engine)
    row.get_by_role("button", name=f"Retry job {outbox_id}").click()
    expect(row).to_contain_text("handed to a worker")
    run_jobs()
    expect(row.locator(".badge")).to_have_text("done", timeout=10_000)
    assert db.count(TrainingExample) == 1
    page.reload()
    expect(page.locator("main")).to_contain_text("No parked jobs")
    assert page.js_errors == []


def test_the_failed_jobs_page_fits_a_phone_and_is_for_admins_only(
    page_for, client, make, db, engine, redis, run_jobs, artifacts
):
    outbox_id, _ = park(client, make, engine, redis, run_jobs, db)
    page = page_for(make.user("admin"), "/admin/jobs", viewport=PHONE)
    page.locator(f"#job-{outbox_id} summary").click()  # the traceback, opened
    page.screenshot(path=artifacts / "failed-jobs-390.png", full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    assert _serious(Axe().run(page)) == []

    lead = page_for(make.user("lead", queues=["claims"]), "/queues")
    expect(lead.get_by_role("link", name="Failed jobs")).to_have_count(0)
    response = lead.goto("/admin/jobs")
    assert response.status == 403
