"""The review page in a real browser: headless Chromium, driven by Playwright, against the
app on `live_server`. Keys, htmx swaps, two reviewers, lost leases and hostile payloads."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy import select

from app.models import Claim, Item, Review, User, utcnow
from tests.conftest import item

REVIEW = "/queues/claims/review"
# For item(..., label="fraud"): the candidates are shown in this order, on keys 1-3.
KEY_LABELS = {"1": "fraud", "2": "legit", "3": "duplicate"}
WAIT_MS = 5_000


def push(client, producer, items):
    r = client.post(
        "/api/v1/queues/claims/items", json={"items": items}, headers=producer["headers"]
    )
    assert r.status_code == 200, r.json


def shown_id(page) -> str | None:
    """The external id of the item on screen, or None on the empty state."""
    heading = page.locator("#review-item article h2")
    return heading.text_content() if heading.count() else None


# htmx makes a swapped-in fragment live (its forms submit through htmx) in the settle step
# after the swap, then fires htmx:load on it. A key pressed before that would submit the new
# form natively, so the tests wait for htmx:load, as any person would, before the next key.
_MARK_LOADED = """() => {
  if (window.__loupeTestHook) return;
  window.__loupeTestHook = true;
  document.addEventListener("htmx:load", (event) => {
    if (event.target.id === "review-item") event.target.setAttribute("data-test-loaded", "");
  });
}"""


def press_and_wait(page, key: str, notice: str) -> str | None:
    """Presses `key` on the page and waits until htmx has swapped in, and made live, the
    fragment whose notice contains `notice`; returns the external id then shown (None for
    the empty state)."""
    page.evaluate(_MARK_LOADED)
    page.keyboard.press(key)
    page.wait_for_function(
        """(text) => {
             const flash = document.querySelector('#review-item[data-test-loaded] .flash');
             return flash !== null && flash.textContent.includes(text);
           }""",
        arg=notice,
        timeout=WAIT_MS,
    )
    return shown_id(page)


def page_loads(page) -> int:
    return page.evaluate("performance.getEntriesByType('navigation').length")


def test_keyboard_only_labels_twenty_items_without_reloading(client, make, db, page_for, artifacts):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    rev = make.user("reviewer", queues=["claims"])
    push(client, producer, [item(f"kb-{n:02d}", "fraud", 0.6) for n in range(20)])
    page = page_for(rev, REVIEW)
    expect(page.locator("#review-item article h2")).to_have_text(
        re.compile(r"^kb-\d\d$"), timeout=WAIT_MS
    )
    expect(page.locator('#review-item [data-key="1"]')).to_be_visible()

    page.screenshot(path=str(artifacts / "review.png"))
    page.set_viewport_size({"width": 375, "height": 900})
    page.screenshot(path=str(artifacts / "review-375.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    # A marker on window survives only if the page is never reloaded.
    page.evaluate("window.__loupeMarker = 'still-here'")
    assert page_loads(page) == 1

    pressed: dict[str, str] = {}
    current = shown_id(page)
    for n in range(20):
        key = "123"[n % 3]
        assert current is not None and current not in pressed, (n, current, pressed)
        pressed[current] = KEY_LABELS[key]
        after = press_and_wait(page, key, f"for {current}.")
        assert after != current
        current = after
    # All twenty are decided: the queue is empty.
    assert current is None
    expect(page.locator("#review-item .empty-state h2")).to_have_text("Nothing to review")

    assert page.evaluate("window.__loupeMarker") == "still-here"
    assert page_loads(page) == 1
    assert page.url.endswith(REVIEW)
    assert page.js_errors == []

    assert db.count(Review) == 20
    saved = dict(
        db.all(select(Item.external_id, Review.label).join(Item, Item.id == Review.item_id))
    )
    assert saved == pressed
    assert set(db.all(select(Review.user_id))) == {(rev["id"],)}
    assert {s for (s,) in db.all(select(Item.status))} == {"done"}


def test_skip_with_s_moves_on_and_the_item_goes_back(client, make, db, page_for):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    rev = make.user("reviewer", queues=["claims"])
    push(client, producer, [item("first", priority=1), item("second")])
    page = page_for(rev, REVIEW)
    expect(page.locator("#review-item article h2")).to_have_text("first", timeout=WAIT_MS)

    after = press_and_wait(page, "s", "Skipped")
    assert after == "second"
    assert page_loads(page) == 1

    status, owner = db.all(
        select(Item.status, Item.lease_owner_id).where(Item.external_id == "first")
    )[0]
    assert (status, owner) == ("pending", None)
    first_id = db.scalar(select(Item.id).where(Item.external_id == "first"))
    assert [s for (s,) in db.all(select(Claim.state).where(Claim.item_id == first_id))] == [
        "released"
    ]
    assert db.scalar(select(Item.status).where(Item.external_id == "second")) == "in_review"
    assert db.count(Review) == 0
    assert page.js_errors == []


def test_two_reviewers_in_two_browsers_never_see_the_same_item(client, make, db, page_for):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    alice = make.user("reviewer", queues=["claims"], name="alice")
    bob = make.user("reviewer", queues=["claims"], name="bob")
    push(client, producer, [item(f"two-{n:02d}", "fraud", 0.6) for n in range(10)])
    pages = {"alice": page_for(alice, REVIEW), "bob": page_for(bob, REVIEW)}
    seen: dict[str, list[str]] = {"alice": [], "bob": []}
    for who, page in pages.items():
        expect(page.locator("#review-item article h2")).to_have_text(
            re.compile(r"^two-\d\d$"), timeout=WAIT_MS
        )
        seen[who].append(shown_id(page))

    # Alternately: alice decides, then bob, four times each; each then holds a fifth item.
    for _ in range(4):
        for who, page in pages.items():
            current = seen[who][-1]
            nxt = press_and_wait(page, "1", f"for {current}.")
            assert nxt is not None
            seen[who].append(nxt)

    assert len(seen["alice"]) == len(set(seen["alice"])) == 5
    assert len(seen["bob"]) == len(set(seen["bob"])) == 5
    assert not set(seen["alice"]) & set(seen["bob"]), seen
    decided = db.all(
        select(User.name, Item.external_id)
        .join(Review, Review.user_id == User.id)
        .join(Item, Item.id == Review.item_id)
    )
    assert sorted(decided) == sorted(
        [("alice", e) for e in seen["alice"][:4]] + [("bob", e) for e in seen["bob"][:4]]
    )
    for page in pages.values():
        assert page.js_errors == []


def test_expired_lease_says_so_and_moves_on(client, make, db, session, page_for):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    rev = make.user("reviewer", queues=["claims"])
    push(client, producer, [item("lapsed", priority=1), item("later")])
    page = page_for(rev, REVIEW)
    expect(page.locator("#review-item article h2")).to_have_text("lapsed", timeout=WAIT_MS)

    # Age the lease instead of sleeping through it.
    past = utcnow() - timedelta(seconds=1)
    session.execute(Claim.__table__.update().values(expires_at=past))
    session.execute(Item.__table__.update().values(lease_expires_at=past))
    session.commit()

    after = press_and_wait(page, "1", "ran out")
    flash = page.locator("#review-item .flash")
    expect(flash).to_be_visible()
    # A refusal is an alert, not a quiet status line.
    assert "Not saved" in flash.text_content()
    assert flash.get_attribute("role") == "alert" and "error" in flash.get_attribute("class")
    # A next item or the empty state, in place of the lost one.
    assert after in ("lapsed", "later") or (
        after is None and page.locator("#review-item .empty-state").is_visible()
    )
    assert page_loads(page) == 1

    assert db.count(Review) == 0
    lapsed_id = db.scalar(select(Item.id).where(Item.external_id == "lapsed"))
    status, owner = db.all(select(Item.status, Item.lease_owner_id).where(Item.id == lapsed_id))[0]
    if after == "lapsed":
        # Re-claimed by the same reviewer, on a fresh live claim.
        assert (status, owner) == ("in_review", rev["id"])
        states = [s for (s,) in db.all(select(Claim.state).where(Claim.item_id == lapsed_id))]
        assert sorted(states) == ["expired", "live"], states
    else:
        assert (status, owner) == ("pending", None)
    assert page.js_errors == []


def test_hostile_payload_renders_as_text(client, make, page_for):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    rev = make.user("reviewer", queues=["claims"])
    hostile = {
        "note": "<script>alert('x')</script>",
        "link": "javascript:alert(1)",
        "pic": '<img src=x onerror="alert(2)">',
        "site": "https://example.org/a?b=<i>",
    }
    push(
        client,
        producer,
        [
            # The first comes with the full page, the second through an htmx swap, which
            # would run a <script> it was handed.
            item("hostile-page", payload=hostile, priority=2),
            item("hostile-swap", payload=hostile, priority=1),
        ],
    )
    page = page_for(rev)
    dialogs: list[str] = []

    def on_dialog(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(REVIEW)

    def check(external_id: str) -> None:
        expect(page.locator("#review-item article h2")).to_have_text(external_id)
        table = page.locator("#review-item .payload-table")
        for text in (hostile["note"], hostile["link"], hostile["pic"], hostile["site"]):
            expect(table.get_by_text(text, exact=True)).to_be_visible()
        assert page.locator('#review-item a[href^="javascript:" i]').count() == 0
        assert page.locator("#review-item script, #review-item img").count() == 0
        site = table.get_by_role("link", name=hostile["site"])
        expect(site).to_have_attribute("href", hostile["site"])

    check("hostile-page")
    assert press_and_wait(page, "1", "for hostile-page.") == "hostile-swap"
    check("hostile-swap")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []
    assert page.js_errors == []
