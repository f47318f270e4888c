"""The dashboard in a real browser (headless Chromium) on the demo queue: at 1280 and at
390 px every panel shows its chart with a title, a text description and a caption, nothing
reaches past the right edge, and the window selector swaps the charts in place."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.dashboard.panels import PANELS

DESK = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

# What reaches past the right edge, to say what to fix.
_OVERFLOWING = """(width) => [...document.body.querySelectorAll("*")]
  .filter((el) => el.getBoundingClientRect().right > width + 0.5)
  .slice(0, 5).map((el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : ""))"""


@pytest.fixture
def demo(app, engine):
    """The demo queue (a trained claims-v1, a labelled past, new claims); its login is a lead."""
    from app.demo.seed import seed_demo

    login = seed_demo(engine, history=150, incoming=20)
    return {"name": login.reviewer, "password": login.password}


@pytest.mark.parametrize("viewport", [DESK, PHONE], ids=["1280", "390"])
def test_every_chart_shows_with_its_caption_and_nothing_overflows(
    demo, page_for, artifacts, viewport
):
    page = page_for(demo, "/queues/claims/dashboard", viewport=viewport)
    expect(page.locator("h1")).to_have_text("Dashboard of “claims”")
    figures = page.locator("figure.panel")
    expect(figures).to_have_count(len(PANELS))
    for spec in PANELS:
        figure = page.locator(f"#panel-{spec.key}")
        expect(figure.locator("h2")).to_have_text(spec.title)
        svg = figure.locator("svg.chart[role=img]")
        expect(svg).to_be_visible()
        assert svg.locator(":scope > title").text_content() == spec.title
        assert svg.locator(":scope > desc").text_content().strip()
        assert len(figure.locator("figcaption").text_content().strip()) > 40
        box = svg.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
        assert box["height"] > 60, f"{spec.key} is drawn too small to read"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"], page.evaluate(_OVERFLOWING, viewport["width"])
    page.screenshot(path=str(artifacts / f"dashboard-{viewport['width']}.png"), full_page=True)
    assert page.js_errors == []


def test_the_window_selector_swaps_the_charts_in_place(demo, page_for, artifacts):
    page = page_for(demo, "/queues/claims/dashboard", viewport=DESK)
    expect(page.locator(".window-selector [aria-current=true]")).to_have_text("7 days")
    page.evaluate("window.__same_page = true")
    page.get_by_role("button", name="30 days").click()
    expect(page.locator(".window-selector [aria-current=true]")).to_have_text("30 days")
    assert page.url.endswith("/queues/claims/dashboard?window=30d")
    assert page.evaluate("window.__same_page") is True  # swapped by htmx, not reloaded
    expect(page.locator("figure.panel")).to_have_count(len(PANELS))
    expect(page.locator("#panel-throughput figcaption")).to_contain_text("30 days")
    assert page.js_errors == []


@pytest.mark.parametrize("viewport", [DESK, PHONE], ids=["1280", "390"])
def test_axe_finds_nothing_critical_or_serious_on_the_dashboard(demo, page_for, viewport):
    from axe_playwright_python.sync_playwright import Axe

    page = page_for(demo, "/queues/claims/dashboard", viewport=viewport)
    results = Axe().run(page)
    serious = [
        f"{v['id']}: {v['help']} ({'; '.join(' '.join(n['target']) for n in v['nodes'][:4])})"
        for v in results.response["violations"]
        if v["impact"] in ("critical", "serious")
    ]
    assert serious == []
