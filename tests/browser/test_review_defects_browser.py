"""The habits of a fast, real reviewer that once saved a wrong label or lost an item: typed
text left in the answer field, reloads and other pages, keys pressed while the next item
settles, two tabs, and refusals that looked like successes (issue 8)."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy import select

from app.db import new_session
from app.models import Claim, Item, Review, utcnow
from app.review.presence import LEAVE_GRACE
from app.review.service import expire_leases
from tests.browser.test_review_actions_browser import open_review, setup_queue
from tests.browser.test_review_browser import REVIEW, WAIT_MS, page_loads, press_and_wait, push
from tests.conftest import item, wait_for

SHOWN = "#review-item #item-title"


def saved(db) -> dict[str, str]:
    return dict(
        db.all(select(Item.external_id, Review.label).join(Item, Item.id == Review.item_id))
    )


def holder(db, external_id: str):
    """(status, lease owner, lease token, lease expiry) of one item."""
    return db.all(
        select(Item.status, Item.lease_owner_id, Item.lease_token, Item.lease_expires_at).where(
            Item.external_id == external_id
        )
    )[0]


# --- 1. typed text never overrides a candidate --------------------------------------


def test_a_candidate_key_saves_the_candidate_not_the_leftover_typed_text(
    client, make, db, page_for
):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    rev = make.user("reviewer", queues=["claims"])
    # Candidate 1 is "duplicate"; the reviewer starts typing "fraud" and thinks better of it.
    push(client, producer, [item("typed-a", "duplicate", 0.6, priority=2), item("typed-b")])
    page = open_review(page_for, rev, "typed-a")
    page.keyboard.press("/")
    page.keyboard.type("fraud")
    page.keyboard.press("Escape")
    # Esc leaves the field and clears it: no stray text waits there.
    assert page.input_value("#other-answer") == ""
    assert press_and_wait(page, "1", "for typed-a.") == "typed-b"
    assert saved(db) == {"typed-a": "duplicate"}

    # Text left in the field by clicking away is marked as not sent, and a click on a
    # candidate still saves that candidate.
    page.click("#other-answer")
    page.keyboard.type("legit")
    page.click("#item-title")
    expect(page.locator("#other-answer")).to_have_class("unsaved")
    expect(page.locator("#other-hint")).to_be_visible()
    expect(page.locator("#other-hint")).to_contain_text("Not saved yet")
    page.click('#review-item [data-key="3"]')  # typed-b's third candidate: "duplicate"
    wait_for(lambda: len(saved(db)) == 2, timeout=5, what="the click's decision")
    assert saved(db) == {"typed-a": "duplicate", "typed-b": "duplicate"}
    assert page.js_errors == []


# --- 2. a reload, back/forward, other pages keep the item; leaving for good returns it --


def test_reloads_and_other_pages_keep_the_reviewers_item(client, make, db, page_for):
    rev = setup_queue(client, make, ["keep-a", "keep-b", "keep-c", "keep-d"])
    other = make.user("reviewer", queues=["claims"], name="other")
    page = open_review(page_for, rev, "keep-a")
    token = page.get_attribute("#review-item", "data-claim")
    for n in range(5):
        page.reload()
        expect(page.locator(SHOWN)).to_have_text("keep-a")
        # The same claim, re-attached: not a new one on a released item.
        assert page.get_attribute("#review-item", "data-claim") == token, n
        status, owner, lease, _ = holder(db, "keep-a")
        assert (status, owner, lease) == ("in_review", rev["id"], token), n

    # To My work and back again (a real navigation both ways, then the browser's back).
    page.click("text=My work")
    page.wait_for_url("**/me/reviews**")
    # The other page keeps the items: the grace the unload gave them is renewed.
    wait_for(
        lambda: holder(db, "keep-a")[3] > utcnow() + LEAVE_GRACE - timedelta(seconds=5),
        timeout=5,
        what="the presence ping",
    )
    page.go_back()
    expect(page.locator(SHOWN)).to_have_text("keep-a")
    assert page.get_attribute("#review-item", "data-claim") == token

    # Meanwhile another reviewer is never handed that item, nor the one leased ahead.
    r = client.post("/api/v1/queues/claims/claims", headers=other["headers"])
    assert r.json["claim"]["item"]["external_id"] == "keep-c"
    # And the first reviewer's answer is taken.
    assert press_and_wait(page, "1", "for keep-a.") == "keep-b"
    assert saved(db) == {"keep-a": "fraud"}
    assert page.js_errors == []


def test_closing_the_tab_returns_the_items_after_a_short_grace(client, make, db, engine, page_for):
    rev = setup_queue(client, make, ["gone-a", "gone-b", "gone-c"])
    page = open_review(page_for, rev, "gone-a")
    # The page holds the queue's full lease (after the previous page's unload, if that came
    # in late, shortened it).
    wait_for(
        lambda: holder(db, "gone-a")[3] > utcnow() + timedelta(seconds=100),
        timeout=10,
        what="the full lease",
    )
    page.close(run_before_unload=True)
    # The unload shortened both leases (the current item and the one leased ahead) ...
    wait_for(
        lambda: all(holder(db, e)[3] <= utcnow() + LEAVE_GRACE for e in ("gone-a", "gone-b")),
        timeout=5,
        what="the leave beacon",
    )
    # ... so once the grace is over, with no page of the app to take them up, they go back.
    with new_session(engine, write=True) as s:
        assert expire_leases(session=s, now=utcnow() + LEAVE_GRACE + timedelta(seconds=1)) == 2
        s.commit()
    assert {holder(db, e)[0] for e in ("gone-a", "gone-b", "gone-c")} == {"pending"}


def test_logging_out_gives_the_items_back_at_once(client, make, db, page_for):
    rev = setup_queue(client, make, ["out-a", "out-b", "out-c"])
    page = open_review(page_for, rev, "out-a")
    with page.expect_navigation():
        page.click("text=Log out")
    assert "/login" in page.url
    wait_for(
        lambda: {holder(db, e)[0] for e in ("out-a", "out-b", "out-c")} == {"pending"},
        timeout=5,
        what="the items to go back",
    )
    assert db.count(Claim, Claim.state.in_(("live", "ahead"))) == 0


# --- 3. keys pressed while the next item settles are applied, never dropped ----------


def test_a_key_pressed_on_the_preview_acts_on_that_item(client, make, db, page_for):
    rev = setup_queue(client, make, ["fast-a", "fast-b", "fast-c", "fast-d"])
    page = open_review(page_for, rev, "fast-a")
    held = []

    def hold_first(route):
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route("**/decide", hold_first)
    page.keyboard.press("1")  # fast-a: fraud; the server's answer is held
    page.wait_for_function("document.querySelector('#review-item .preview') !== null")
    page.keyboard.press("2")  # at once, on the preview of fast-b: legit
    expect(page.locator("#review-item .candidate.queued")).to_have_count(1)
    for _ in range(250):  # up to 5 s on a busy machine
        if held:
            break
        page.wait_for_timeout(20)
    assert len(held) == 1 and db.count(Review) == 0
    held[0].continue_()
    # fast-b comes back live, the waiting key answers it, and fast-c follows.
    page.wait_for_function(
        "document.querySelector('#review-item .flash').textContent.includes('for fast-b.')",
        timeout=WAIT_MS,
    )
    expect(page.locator(SHOWN)).to_have_text("fast-c")
    assert saved(db) == {"fast-a": "fraud", "fast-b": "legit"}
    assert page.js_errors == []


def test_a_key_for_an_item_that_did_not_come_back_is_reported(client, make, db, engine, page_for):
    rev = setup_queue(client, make, ["lost-a", "lost-b", "lost-c"])
    page = open_review(page_for, rev, "lost-a")
    # lost-b, leased ahead and ready as the preview, loses its lease meanwhile ...
    with new_session(engine, write=True) as s:
        past = utcnow() - timedelta(seconds=1)
        s.execute(Claim.__table__.update().where(Claim.state == "ahead").values(expires_at=past))
        s.execute(
            Item.__table__.update()
            .where(Item.external_id == "lost-b")
            .values(lease_expires_at=past)
        )
        s.commit()
    # ... and another reviewer takes it.
    other = make.user("reviewer", queues=["claims"], name="other")
    r = client.post("/api/v1/queues/claims/claims", headers=other["headers"])
    assert r.json["claim"]["item"]["external_id"] == "lost-b"
    # Two keys in one go: 1 answers lost-a and shows the preview of lost-b at once, so 2 is
    # pressed on lost-b before any answer can come back.
    page.evaluate(
        """() => ["1", "2"].forEach((key) =>
             document.dispatchEvent(new KeyboardEvent("keydown", {key, bubbles: true})))"""
    )
    notice = page.locator("#review-item #notice")
    expect(notice).to_contain_text("Not applied", timeout=WAIT_MS)
    assert notice.get_attribute("role") == "alert"
    assert page.text_content(SHOWN) == "lost-c"
    # The key was not spent on another item.
    assert saved(db) == {"lost-a": "fraud"}


# --- 4. two tabs of one reviewer: one current item, every tab follows ---------------


def _two_tabs(page_for, rev, first: str, *, second_listens=True, second_beats=True):
    page = open_review(page_for, rev, first)
    tab = page.context.new_page()
    tab.js_errors = []
    tab.on("pageerror", lambda exc: tab.js_errors.append(str(exc)))
    if not second_listens:
        # A tab that does not hear the other one (an old browser, a suspended tab).
        tab.add_init_script("delete window.BroadcastChannel;")
    if not second_beats:
        # Nor does its heartbeat get through (a laptop's tab asleep, a flaky network).
        tab.route("**/heartbeat", lambda route: route.abort())
    tab.goto(REVIEW)
    expect(tab.locator(SHOWN)).to_have_text(first, timeout=WAIT_MS)
    return page, tab


def test_two_tabs_show_one_current_item_and_follow_each_other(client, make, db, page_for):
    rev = setup_queue(client, make, ["tab-a", "tab-b", "tab-c", "tab-d"])
    page, tab = _two_tabs(page_for, rev, "tab-a")
    token = page.get_attribute("#review-item", "data-claim")
    assert tab.get_attribute("#review-item", "data-claim") == token
    assert press_and_wait(page, "1", "for tab-a.") == "tab-b"
    # The other tab moves on by itself, to the same item, and says why.
    expect(tab.locator(SHOWN)).to_have_text("tab-b", timeout=WAIT_MS)
    expect(tab.locator("#review-item #notice")).to_contain_text("other tab")
    assert tab.get_attribute("#review-item", "data-claim") == page.get_attribute(
        "#review-item", "data-claim"
    )
    # Answering in the second tab moves the first one on in turn.
    assert press_and_wait(tab, "2", "for tab-b.") == "tab-c"
    expect(page.locator(SHOWN)).to_have_text("tab-c", timeout=WAIT_MS)
    assert saved(db) == {"tab-a": "fraud", "tab-b": "legit"}
    # Closing one tab does not give away the item the other one shows.
    tab.close(run_before_unload=True)
    wait_for(
        lambda: holder(db, "tab-c")[3] > utcnow() + timedelta(seconds=100),
        timeout=5,
        what="the remaining tab to take the lease up again",
    )
    assert page.js_errors == [] and tab.js_errors == []


def test_a_stale_tab_is_told_plainly_and_the_first_answer_stands(client, make, db, page_for):
    rev = setup_queue(client, make, ["old-a", "old-b", "old-c"])
    page, tab = _two_tabs(page_for, rev, "old-a", second_listens=False, second_beats=False)
    assert press_and_wait(page, "1", "for old-a.") == "old-b"
    # The deaf tab still shows old-a and answers it differently.
    expect(tab.locator(SHOWN)).to_have_text("old-a")
    after = press_and_wait(tab, "2", "already answered")
    notice = tab.locator("#review-item #notice")
    assert notice.get_attribute("role") == "alert"
    assert "“fraud”" in notice.text_content() and "press u" in notice.text_content()
    # It now shows the reviewer's current item, the same as the other tab.
    assert after == "old-b"
    assert saved(db) == {"old-a": "fraud"}


def test_a_tab_that_missed_the_message_catches_up_when_it_is_looked_at_again(
    client, make, db, page_for
):
    rev = setup_queue(client, make, ["wake-a", "wake-b", "wake-c"])
    page, tab = _two_tabs(page_for, rev, "wake-a", second_listens=False)
    tab.wait_for_timeout(2000)  # its first heartbeat has gone by
    assert press_and_wait(page, "1", "for wake-a.") == "wake-b"
    expect(tab.locator(SHOWN)).to_have_text("wake-a")
    # The reviewer switches back to the tab: its heartbeat finds the item answered.
    tab.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    expect(tab.locator(SHOWN)).to_have_text("wake-b", timeout=WAIT_MS)
    expect(tab.locator("#review-item #notice")).to_contain_text("other tab")
    assert tab.locator("#review-item #notice").get_attribute("role") == "status"
    assert saved(db) == {"wake-a": "fraud"}


# --- 5. refusals stand out, successes stay quiet --------------------------------------


def test_refusals_are_alerts_and_look_different_from_successes(client, make, db, page_for):
    rev = setup_queue(client, make, ["tone-a", "tone-b", "tone-c"])
    page = open_review(page_for, rev, "tone-a")
    press_and_wait(page, "1", "Saved")
    ok = page.locator("#review-item #notice")
    assert ok.get_attribute("role") == "status"
    ok_style = ok.evaluate("e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]")
    # A typed answer outside the queue's labels is refused, and says what to do next.
    page.keyboard.press("/")
    page.keyboard.type("chargeback")
    page.keyboard.press("Enter")
    bad = page.locator("#review-item #notice")
    expect(bad).to_contain_text("Not saved", timeout=WAIT_MS)
    assert bad.get_attribute("role") == "alert"
    assert "Pick a candidate" in bad.text_content()
    bad_style = bad.evaluate(
        "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]"
    )
    assert bad_style[0] != ok_style[0] and bad_style[1] != ok_style[1]
    assert ok_style[0] in ("rgba(0, 0, 0, 0)", "transparent")  # the success is a quiet line
    assert saved(db) == {"tone-a": "fraud"}
    assert page_loads(page) == 1


# --- found by a fast reviewer's walk ---------------------------------------------------


def test_a_held_key_answers_one_item_only(client, make, db, page_for):
    rev = setup_queue(client, make, ["held-a", "held-b", "held-c", "held-d"])
    page = open_review(page_for, rev, "held-a")
    page.keyboard.down("1")
    for _ in range(8):  # what a key held down sends: the same key again, as repeats
        page.wait_for_timeout(30)
        page.keyboard.down("1")
    page.keyboard.up("1")
    expect(page.locator(SHOWN)).to_have_text("held-b", timeout=WAIT_MS)
    page.wait_for_timeout(500)
    assert saved(db) == {"held-a": "fraud"}
    expect(page.locator(SHOWN)).to_have_text("held-b")


def test_a_number_with_no_answer_says_so(client, make, db, page_for):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    rev = make.user("reviewer", queues=["claims"])
    one = {
        "external_id": "single",
        "payload": {"amount": 3.0},
        "prediction": {"model_version": "p", "candidates": [{"label": "legit", "score": 0.7}]},
    }
    push(client, producer, [one])
    page = open_review(page_for, rev, "single")
    page.keyboard.press("4")
    notice = page.locator("#review-item #notice")
    expect(notice).to_contain_text("Key 4 did nothing: single has only answer 1.")
    assert notice.get_attribute("role") == "alert"
    assert db.count(Review) == 0


def test_a_typed_answer_matches_the_queue_label_and_a_refused_one_stays(client, make, db, page_for):
    rev = setup_queue(client, make, ["case-a", "case-b", "case-c"])
    page = open_review(page_for, rev, "case-a")
    page.keyboard.press("/")
    page.keyboard.type(" Duplicate ")
    assert press_and_wait(page, "Enter", "for case-a.") == "case-b"
    assert saved(db) == {"case-a": "duplicate"}
    # An answer that is no label of the queue is refused, names the labels, and stays in
    # the field to be corrected.
    page.keyboard.press("/")
    page.keyboard.type("chargeback")
    page.keyboard.press("Enter")
    notice = page.locator("#review-item #notice")
    expect(notice).to_contain_text("legit, fraud, duplicate", timeout=WAIT_MS)
    assert page.input_value("#other-answer") == "chargeback"
    assert saved(db) == {"case-a": "duplicate"}


def test_an_escalation_of_only_spaces_keeps_the_dialog_open(client, make, db, page_for):
    from app.models import ItemEvent

    rev = setup_queue(client, make, ["esc-a", "esc-b"])
    page = open_review(page_for, rev, "esc-a")
    page.keyboard.press("e")
    page.keyboard.type("   ")
    page.keyboard.press("Enter")
    expect(page.locator("#escalate-dialog")).to_have_attribute("open", "")
    assert db.count(ItemEvent) == 0
    page.keyboard.type("IBAN from another country")
    page.keyboard.press("Enter")
    expect(page.locator(SHOWN)).to_have_text("esc-b", timeout=WAIT_MS)
    assert db.count(ItemEvent, ItemEvent.kind == "escalate") == 1
