"""Layout and accessibility in a real browser (headless Chromium, Playwright) on the demo
queue: the review page fits a 1280x800 screen, no page scrolls sideways at 390 px, axe-core
finds nothing critical or serious, candidates are named by their visible text, every page has
one h1, and there is a favicon."""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from tests.browser.test_review_browser import REVIEW, WAIT_MS, press_and_wait, push

# Realistic worst cases: a producer's long external id (a long unbroken run at its end) and
# long unbroken strings in a payload field and in the long text.
LONG_ID = "refund-request/2025-03-14/acquirer-7f3c9a1e5b2d4c8e9f102a6b8d4e1c37aa09e3f1c2b7d6e5"
LONG_WORD = "https://disputes.example-acquirer.com/cases/" + "a1b2c3d4e5f6" * 8
PHONE = {"width": 390, "height": 844}
DESK = {"width": 1280, "height": 800}


@pytest.fixture
def demo(app, engine):
    """The demo queue (generated claims, a trained claims-v1), as the README screenshots use it;
    returns the demo login as a `page_for` user."""
    from app.demo.seed import seed_demo

    login = seed_demo(engine, history=150, incoming=20, gold_rate=0)  # claims in a known order
    return {"name": login.reviewer, "password": login.password}


@pytest.fixture
def long_items(demo, client, make):
    """Claims with a long external id and long unbroken strings, ahead of the demo's own."""
    producer = make.user("scientist", queues=["claims"])
    notes = [
        "I was charged twice, and my card was stolen: see " + LONG_WORD,
        "Never received it, see " + LONG_WORD,
        "I do not recognise this, see " + LONG_WORD,
    ]
    push(
        client,
        producer,
        [
            {
                "external_id": f"{LONG_ID}-{n}",
                "priority": 100 - n,
                "payload": {
                    "amount": 240.0 + 300 * n,
                    "currency": "EUR",
                    "country": "FR",
                    "merchant_category": LONG_WORD,
                    "channel": "web",
                    "days_since_purchase": 12,
                    "customer_tenure_months": 3,
                    "previous_claims_12m": 2,
                    "purchase_date": "2025-03-02",
                    "note": note,
                },
            }
            for n, note in enumerate(notes)
        ],
    )
    return demo


PAGES = {
    "home": "/queues",
    "review": REVIEW,
    "my work": "/me/reviews",
    "models": "/queues/claims/models",
    "model card": "/queues/claims/models/claims-v1",
    "quality": "/queues/claims/quality",
    "reviewers": "/queues/claims/reviewers",
    "my stats": "/me/stats",
    "error": "/queues/" + LONG_WORD.replace("/", "-") + "/review",
}


@pytest.fixture
def every_page(browser, live_server):
    """every_page(page) yields (name, page) for each page under test, loaded in the logged-in
    `page`, then the login page in a logged-out context of the same size."""
    contexts = []

    def visit(page):
        for name, path in PAGES.items():
            page.goto(path)
            if name == "review":
                expect(page.locator("#review-item article h2")).to_be_visible(timeout=WAIT_MS)
            yield name, page
        context = browser.new_context(base_url=live_server, viewport=page.viewport_size)
        contexts.append(context)
        login = context.new_page()
        login.goto("/login")
        yield "login", login

    yield visit
    for context in contexts:
        context.close()


def open_review(page_for, user, viewport):
    page = page_for(user, REVIEW, viewport=viewport)
    expect(page.locator("#review-item article h2")).to_be_visible(timeout=WAIT_MS)
    return page


def answer_first(page) -> str | None:
    """Answers the item on screen with key 1 (so My work has a row); returns the next one."""
    shown = page.locator("#review-item article h2").text_content()
    return press_and_wait(page, "1", f"for {shown}.")


# --- 1280x800: the review page's working area without scrolling ----------------------


def test_review_page_fits_a_1280x800_screen(demo, page_for, artifacts):
    page = open_review(page_for, demo, DESK)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    # Three items in a row: the second and third show the quiet "Saved …" line too.
    for turn in range(3):
        shown = page.locator("#review-item article h2").text_content()
        boxes = {
            "last payload row": page.locator("#review-item .payload-table tr").last,
            "last candidate": page.locator("#review-item button.candidate").last,
            "evidence heading": page.locator("#evidence-title"),
        }
        if turn == 0:
            page.screenshot(path=str(artifacts / "review-1280x800.png"))
        assert page.evaluate("window.scrollY") == 0
        for what, locator in boxes.items():
            box = locator.bounding_box()
            assert box is not None, f"{shown}: no {what}"
            assert box["y"] >= 0 and box["y"] + box["height"] <= DESK["height"], (
                f"{shown}: the {what} ends at {box['y'] + box['height']:.0f} px, "
                f"below the {DESK['height']} px screen"
            )
        answer_first(page)
    assert page.js_errors == []


# --- 390 px: nothing scrolls sideways ---------------------------------------------------

# The outermost elements that reach past the right edge, to say what to fix.
_OVERFLOWING = """(width) => {
  const out = [];
  for (const el of document.body.querySelectorAll("*")) {
    const right = el.getBoundingClientRect().right + window.scrollX;
    if (right <= width + 0.5 || out.some((o) => o.el.contains(el))) continue;
    out.push({el, right});
  }
  return out.slice(0, 5).map(({el, right}) =>
    `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}` +
    `${el.classList.length ? "." + [...el.classList].join(".") : ""} to ${Math.round(right)} px`);
}"""


def test_no_page_scrolls_sideways_at_390_px(long_items, page_for, every_page, artifacts):
    page = open_review(page_for, long_items, PHONE)
    assert page.locator("#review-item article h2").text_content().startswith(LONG_ID)
    assert answer_first(page).startswith(LONG_ID)  # My work lists a long id, review shows one
    too_wide = {}
    for name, shown in every_page(page):
        width = shown.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            too_wide[name] = (width, shown.evaluate(_OVERFLOWING, PHONE["width"]))
        shown.screenshot(
            path=str(artifacts / f"layout-390-{name.replace(' ', '-')}.png"), full_page=True
        )
    assert too_wide == {}, f"pages wider than {PHONE['width']} px: {too_wide}"
    assert page.js_errors == []


# --- axe-core ------------------------------------------------------------------------


def _serious(results) -> list[str]:
    lines = []
    for v in results.response["violations"]:
        if v["impact"] not in ("critical", "serious"):
            continue
        targets = "; ".join(" ".join(n["target"]) for n in v["nodes"][:6])
        more = f" (+{len(v['nodes']) - 6} more)" if len(v["nodes"]) > 6 else ""
        lines.append(f"{v['id']} [{v['impact']}] {v['help']}: {targets}{more}")
    return lines


@pytest.mark.parametrize("viewport", [DESK, PHONE], ids=["1280", "390"])
def test_axe_finds_nothing_critical_or_serious(long_items, page_for, every_page, viewport):
    """At both widths: a box that scrolls only on a phone must be reachable by keyboard."""
    axe = Axe()
    page = open_review(page_for, long_items, viewport)
    answer_first(page)
    found = {}
    for name, shown in every_page(page):
        lines = _serious(axe.run(shown))
        if lines:
            found[name] = lines
    report = "\n".join(f"{name}:\n  " + "\n  ".join(lines) for name, lines in found.items())
    assert not found, "axe-core violations:\n" + report


# --- names, headings, favicon ---------------------------------------------------------


def test_candidates_are_named_by_their_visible_text(demo, page_for):
    page = open_review(page_for, demo, DESK)
    buttons = page.locator("#review-item button.candidate")
    expect(buttons.first).to_be_visible()
    for n in range(buttons.count()):
        button = buttons.nth(n)
        visible = " ".join(button.inner_text().split())
        expect(button).to_have_accessible_name(re.compile(re.escape(visible)))


def test_every_page_has_exactly_one_h1(long_items, page_for, every_page):
    page = open_review(page_for, long_items, DESK)
    answer_first(page)
    counts = {name: shown.locator("h1").count() for name, shown in every_page(page)}
    assert counts == dict.fromkeys(counts, 1), counts


def test_a_favicon_is_linked_and_favicon_ico_answers(client):
    page = client.get("/login")
    match = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', page.text)
    assert match, "no SVG icon linked from the page head"
    icon = client.get(match.group(1))
    assert icon.status_code == 200
    assert icon.mimetype == "image/svg+xml"
    assert b"<svg" in icon.data
    ico = client.get("/favicon.ico", follow_redirects=True)
    assert ico.status_code == 200
    assert ico.mimetype == "image/svg+xml"
