"""The review workspace's other actions in a real browser (headless Chromium, Playwright),
keyboard first: undo, escalate, flag, another answer, arrows and Enter, help, the model
feedback radios, My work with reopen; and the README screenshots."""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.sync_api import expect
from sqlalchemy import select

from app.models import Item, ItemEvent, Label, Review
from tests.browser.test_review_browser import (
    _MARK_LOADED,
    KEY_LABELS,
    REVIEW,
    WAIT_MS,
    page_loads,
    press_and_wait,
    push,
    shown_id,
)
from tests.conftest import PROJECT, item

SCREENSHOTS = PROJECT / "docs" / "screenshots"
SELECTED = re.compile(r"\bselected\b")


# --- helpers -------------------------------------------------------------------------


def setup_queue(client, make, ids, labels=("legit", "fraud", "duplicate")):
    """A queue holding `ids`, offered in that order, each with the top candidate "fraud"
    (so keys 1-3 are KEY_LABELS); returns a reviewer of the queue."""
    make.queue(labels=labels, audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    rev = make.user("reviewer", queues=["claims"])
    rev["producer"] = producer
    n = len(ids)
    push(client, producer, [item(e, "fraud", 0.6, priority=n - i) for i, e in enumerate(ids)])
    return rev


def open_review(page_for, rev, first: str):
    page = page_for(rev, REVIEW)
    expect(page.locator("#review-item article h2")).to_have_text(first, timeout=WAIT_MS)
    return page


def click_and_wait(page, selector: str, notice: str) -> str | None:
    """press_and_wait for a mouse click: clicks, then waits for the live fragment whose
    notice contains `notice`; returns the external id then shown."""
    page.evaluate(_MARK_LOADED)
    page.click(selector)
    page.wait_for_function(
        """(text) => {
             const flash = document.querySelector('#review-item[data-test-loaded] .flash');
             return flash !== null && flash.textContent.includes(text);
           }""",
        arg=notice,
        timeout=WAIT_MS,
    )
    return shown_id(page)


_RECORD = """() => {
  if (!window.__loupeRequests) {
    window.__loupeRequests = [];
    document.addEventListener("htmx:beforeRequest", (e) =>
      window.__loupeRequests.push(e.detail.pathInfo.requestPath));
  }
  window.__loupeRequests.length = 0;
  document.getElementById("review-item").removeAttribute("data-test-loaded");
}"""


def press_and_record(page, key: str) -> list[str]:
    """Presses `key` and returns the paths of the htmx requests it started (a key acts
    synchronously, so none means the key did nothing); waits for any answer to be
    swapped in and made live, so no request is left running after the test."""
    page.evaluate(_MARK_LOADED)
    page.evaluate(_RECORD)
    page.keyboard.press(key)
    paths = page.evaluate("window.__loupeRequests.slice()")
    if paths:
        page.wait_for_selector("#review-item[data-test-loaded]", state="attached")
    return paths


def focus_leaves_dialogs(page) -> None:
    """Waits until focus is out of any dialog: a closed dialog keeps it, in its hidden
    input, until the browser's next rendering step, and a key pressed before then goes
    there (as it would for a person who pressed it within those few milliseconds)."""
    page.wait_for_function("() => !document.activeElement?.closest('dialog')", timeout=WAIT_MS)


def item_id(db, external_id: str) -> int:
    return db.scalar(select(Item.id).where(Item.external_id == external_id))


def reviews_of(db, external_id: str) -> list[tuple]:
    return [
        tuple(r)
        for r in db.all(
            select(Review.label, Review.model_feedback).where(
                Review.item_id == item_id(db, external_id)
            )
        )
    ]


def label_of(db, external_id: str) -> tuple | None:
    rows = db.all(
        select(Label.value, Label.model_feedback).where(Label.item_id == item_id(db, external_id))
    )
    assert len(rows) <= 1
    return tuple(rows[0]) if rows else None


def events_of(db, external_id: str, kind: str) -> list[str | None]:
    return [
        c
        for (c,) in db.all(
            select(ItemEvent.comment)
            .where(ItemEvent.item_id == item_id(db, external_id), ItemEvent.kind == kind)
            .order_by(ItemEvent.id)
        )
    ]


def status_of(db, external_id: str) -> str:
    return db.scalar(select(Item.status).where(Item.external_id == external_id))


def lease_of(db, external_id: str) -> tuple:
    rows = db.all(select(Item.status, Item.lease_owner_id).where(Item.external_id == external_id))
    return tuple(rows[0])


def notice(page):
    return page.locator("#review-item .flash")


# --- undo ----------------------------------------------------------------------------


def test_u_undoes_the_last_decision_and_a_new_answer_replaces_it(client, make, db, page_for):
    rev = setup_queue(client, make, ["undo-a", "undo-b"])
    page = open_review(page_for, rev, "undo-a")

    assert press_and_wait(page, "1", "for undo-a.") == "undo-b"
    assert reviews_of(db, "undo-a") == [("fraud", "right")]
    assert label_of(db, "undo-a") == ("fraud", "right")

    assert press_and_wait(page, "u", "Undone: undo-a") == "undo-a"
    expect(notice(page)).to_contain_text("Undone: undo-a")
    expect(page.locator('#review-item[data-external-id="undo-a"]')).to_have_count(1)
    assert db.count(Review) == 0
    assert db.count(Label) == 0
    assert events_of(db, "undo-a", "undo") == ["was 'fraud'"]
    assert lease_of(db, "undo-a") == ("in_review", rev["id"])
    # The item that was on screen went back to the queue.
    assert lease_of(db, "undo-b") == ("pending", None)

    # Answered again, differently: the new answer is the one stored.
    assert press_and_wait(page, "2", f"Saved “{KEY_LABELS['2']}” for undo-a.") == "undo-b"
    assert reviews_of(db, "undo-a") == [("legit", "wrong")]
    assert label_of(db, "undo-a") == ("legit", "wrong")
    assert page_loads(page) == 1
    assert page.js_errors == []


def test_u_with_nothing_to_undo_says_so_and_breaks_nothing(client, make, db, page_for):
    rev = setup_queue(client, make, ["solo-a", "solo-b"])
    page = open_review(page_for, rev, "solo-a")

    assert press_and_wait(page, "u", "no recent decision to undo") == "solo-a"
    expect(notice(page)).to_be_visible()
    assert db.count(Review) == 0
    assert db.count(ItemEvent) == 0
    assert status_of(db, "solo-a") == "in_review"
    # The keys still work on the same item.
    assert press_and_wait(page, "1", "for solo-a.") == "solo-b"
    assert reviews_of(db, "solo-a") == [("fraud", "right")]
    assert page_loads(page) == 1
    assert page.js_errors == []


# --- escalate ------------------------------------------------------------------------


def test_e_escalates_with_a_reason_typed_in_the_dialog(client, make, db, page_for):
    rev = setup_queue(client, make, ["esc-a", "esc-b"])
    page = open_review(page_for, rev, "esc-a")

    page.keyboard.press("e")
    dialog = page.locator("dialog#escalate-dialog")
    expect(dialog).to_be_visible()
    reason_box = dialog.locator("input[name=reason]")
    expect(reason_box).to_be_focused()
    # Letters and digits that are shortcuts elsewhere are text here.
    reason = "Customer says the bank refunded 120 euros; fees differ"
    page.keyboard.type(reason)
    expect(reason_box).to_have_value(reason)

    assert press_and_wait(page, "Enter", "Escalated esc-a") == "esc-b"
    expect(page.locator("dialog[open]")).to_have_count(0)
    assert status_of(db, "esc-a") == "escalated"
    assert events_of(db, "esc-a", "escalate") == [reason]
    assert db.count(Review) == 0
    assert page_loads(page) == 1
    assert page.js_errors == []


def test_e_then_escape_closes_the_dialog_without_escalating(client, make, db, page_for):
    rev = setup_queue(client, make, ["esc-x", "esc-y"])
    page = open_review(page_for, rev, "esc-x")

    page.keyboard.press("e")
    dialog = page.locator("dialog#escalate-dialog")
    expect(dialog).to_be_visible()
    page.keyboard.type("not sure")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    focus_leaves_dialogs(page)
    assert shown_id(page) == "esc-x"
    assert db.count(ItemEvent) == 0
    assert status_of(db, "esc-x") == "in_review"
    # Back to the keys.
    assert press_and_wait(page, "1", "for esc-x.") == "esc-y"
    assert db.count(ItemEvent) == 0
    assert reviews_of(db, "esc-x") == [("fraud", "right")]
    assert page.js_errors == []


# --- flag ----------------------------------------------------------------------------


def test_f_flags_the_item_which_stays_until_answered(client, make, db, page_for):
    rev = setup_queue(client, make, ["flag-a", "flag-b"])
    page = open_review(page_for, rev, "flag-a")

    page.keyboard.press("f")
    dialog = page.locator("dialog#flag-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("input[name=comment]")).to_be_focused()
    comment = "IBAN differs from the card holder"
    page.keyboard.type(comment)

    assert press_and_wait(page, "Enter", "Flagged flag-a") == "flag-a"
    expect(page.locator("dialog[open]")).to_have_count(0)
    expect(page.locator("#review-item .badge.flagged")).to_have_text(f"flagged: {comment}")
    assert events_of(db, "flag-a", "flag") == [comment]
    assert status_of(db, "flag-a") == "in_review"
    assert db.count(Review) == 0

    assert press_and_wait(page, "1", "for flag-a.") == "flag-b"
    assert reviews_of(db, "flag-a") == [("fraud", "right")]
    expect(page.locator("#review-item .badge.flagged")).to_have_count(0)
    assert page.js_errors == []


# --- another answer ------------------------------------------------------------------


def test_slash_types_another_of_the_queue_labels(client, make, db, page_for):
    rev = setup_queue(client, make, ["other-a", "other-b"])
    page = open_review(page_for, rev, "other-a")

    page.keyboard.press("/")
    box = page.locator("#other-answer")
    expect(box).to_be_focused()
    expect(box).to_have_value("")  # "/" itself is not typed
    # Not the top candidate ("fraud"); typed, not picked with its key.
    page.keyboard.type("duplicate")
    expect(box).to_have_value("duplicate")

    assert press_and_wait(page, "Enter", "Saved “duplicate” for other-a.") == "other-b"
    assert reviews_of(db, "other-a") == [("duplicate", "wrong")]
    assert label_of(db, "other-a") == ("duplicate", "wrong")
    assert page.js_errors == []


def test_slash_typed_answer_outside_the_queue_labels_is_refused(client, make, db, page_for):
    rev = setup_queue(client, make, ["bad-a", "bad-b"])
    page = open_review(page_for, rev, "bad-a")

    page.keyboard.press("/")
    page.keyboard.type("chargeback")
    assert press_and_wait(page, "Enter", "not one of this queue's labels") == "bad-a"
    assert db.count(Review) == 0
    assert status_of(db, "bad-a") == "in_review"
    # Escape leaves the box (focus may be put back in it), then a key answers.
    page.keyboard.press("Escape")
    assert press_and_wait(page, "1", "for bad-a.") == "bad-b"
    assert reviews_of(db, "bad-a") == [("fraud", "right")]
    assert page.js_errors == []


def test_slash_types_a_new_answer_on_a_free_form_queue(client, make, db, page_for):
    rev = setup_queue(client, make, ["free-a", "free-b"], labels=None)
    page = open_review(page_for, rev, "free-a")
    expect(page.locator("#other-answer")).to_have_attribute("placeholder", "Your answer")

    page.keyboard.press("/")
    expect(page.locator("#other-answer")).to_be_focused()
    page.keyboard.type("chargeback")

    assert press_and_wait(page, "Enter", "Saved “chargeback” for free-a.") == "free-b"
    assert reviews_of(db, "free-a") == [("chargeback", "all_wrong")]
    assert label_of(db, "free-a") == ("chargeback", "all_wrong")
    assert page.js_errors == []


def test_after_a_typed_answer_the_keys_work_on_the_next_item(client, make, db, page_for):
    # htmx 2 gives focus back to an element with the same id after a swap: without the
    # page moving focus to the new item, the next item's #other-answer would have it and
    # the keys would type into it. No item is leased ahead here, so no preview is swapped
    # in before the answer (which would drop the focus anyway).
    rev = setup_queue(client, make, ["late-a"])
    page = open_review(page_for, rev, "late-a")
    # More work arrives while the reviewer is on the last item.
    push(client, rev["producer"], [item("late-b", "fraud", 0.6)])

    page.keyboard.press("/")
    page.keyboard.type("duplicate")
    assert press_and_wait(page, "Enter", "Saved “duplicate” for late-a.") == "late-b"
    expect(page.locator("#other-answer")).not_to_be_focused()
    assert press_and_record(page, "1"), "the key 1 did nothing on late-b"
    expect(notice(page)).to_contain_text("Saved “fraud” for late-b.")
    assert reviews_of(db, "late-b") == [("fraud", "right")]


# --- arrows and Enter ----------------------------------------------------------------


def test_enter_answers_the_top_candidate_and_arrow_down_moves_to_the_second(
    client, make, db, page_for
):
    rev = setup_queue(client, make, ["arrow-a", "arrow-b", "arrow-c"])
    page = open_review(page_for, rev, "arrow-a")
    candidates = page.locator("#review-item .candidate")
    expect(candidates.nth(0)).to_have_class(SELECTED)

    # Enter at first: the model's top answer.
    assert press_and_wait(page, "Enter", "Saved “fraud” for arrow-a.") == "arrow-b"

    page.keyboard.press("ArrowDown")
    expect(candidates.nth(1)).to_have_class(SELECTED)
    expect(candidates.nth(1)).to_be_focused()
    expect(page.locator("#review-item .candidate.selected")).to_have_count(1)
    assert press_and_wait(page, "Enter", f"Saved “{KEY_LABELS['2']}” for arrow-b.") == "arrow-c"

    # The next item starts on its top answer again.
    expect(candidates.nth(0)).to_have_class(SELECTED)
    assert dict(
        db.all(select(Item.external_id, Review.label).join(Item, Item.id == Review.item_id))
    ) == {"arrow-a": "fraud", "arrow-b": "legit"}
    assert page.js_errors == []


# --- help ----------------------------------------------------------------------------


def test_question_mark_opens_the_keys_help_and_escape_closes_it(client, make, db, page_for):
    rev = setup_queue(client, make, ["help-a", "help-b"])
    page = open_review(page_for, rev, "help-a")
    dialog = page.locator("dialog#help-dialog")
    expect(dialog).to_be_hidden()

    page.keyboard.press("?")
    expect(dialog).to_be_visible()
    keys = {k.strip() for k in dialog.locator("table.keys kbd").all_text_contents()}
    assert {"1", "9", "↑", "↓", "Enter", "/", "s", "e", "f", "u", "?", "Esc"} <= keys, keys
    for words in ("skip", "escalate", "flag", "undo"):
        expect(dialog).to_contain_text(words)

    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    focus_leaves_dialogs(page)
    assert press_and_wait(page, "1", "for help-a.") == "help-b"
    assert page.js_errors == []


# --- model feedback ------------------------------------------------------------------


def test_model_feedback_radio_is_sent_with_the_answer(client, make, db, page_for):
    rev = setup_queue(client, make, ["fb-a", "fb-b", "fb-c"])
    page = open_review(page_for, rev, "fb-a")

    page.click('#review-item input[name=model_feedback][value="wrong"]')
    assert click_and_wait(page, '#review-item [data-key="2"]', "for fb-a.") == "fb-b"
    assert reviews_of(db, "fb-a") == [("legit", "wrong")]
    assert label_of(db, "fb-a") == ("legit", "wrong")

    # Candidate 2 alone implies "wrong"; "all candidates wrong" shows the radio travels.
    # The next item's radios start empty.
    expect(page.locator("#review-item input[name=model_feedback]:checked")).to_have_count(0)
    page.click('#review-item input[name=model_feedback][value="all_wrong"]')
    assert click_and_wait(page, '#review-item [data-key="2"]', "for fb-b.") == "fb-c"
    assert reviews_of(db, "fb-b") == [("legit", "all_wrong")]
    assert label_of(db, "fb-b") == ("legit", "all_wrong")
    assert page.js_errors == []


def test_after_clicking_a_feedback_radio_the_number_keys_still_answer(client, make, db, page_for):
    rev = setup_queue(client, make, ["rad-a", "rad-b"])
    page = open_review(page_for, rev, "rad-a")
    page.click('#review-item input[name=model_feedback][value="wrong"]')
    assert press_and_record(page, "2"), "the key 2 did nothing"
    assert reviews_of(db, "rad-a") == [("legit", "wrong")]


# --- mouse then keys -----------------------------------------------------------------


def test_after_clicking_undo_enter_answers_the_item_brought_back(client, make, db, page_for):
    # Were focus left on the new #undo-button (htmx restores it by id), Enter would press
    # it and undo the decision before instead of answering.
    rev = setup_queue(client, make, ["mu-a", "mu-b", "mu-c"])
    page = open_review(page_for, rev, "mu-a")
    assert press_and_wait(page, "1", "for mu-a.") == "mu-b"
    assert press_and_wait(page, "1", "for mu-b.") == "mu-c"
    assert click_and_wait(page, "#undo-button", "Undone: mu-b") == "mu-b"

    expect(page.locator("#undo-button")).not_to_be_focused()
    paths = press_and_record(page, "Enter")
    assert reviews_of(db, "mu-a") == [("fraud", "right")], "Enter undid mu-a"
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["decide"], paths
    expect(notice(page)).to_contain_text("Saved “fraud” for mu-b.")
    assert reviews_of(db, "mu-b") == [("fraud", "right")]


# --- My work -------------------------------------------------------------------------


def test_my_work_lists_decisions_and_reopen_brings_one_back(client, make, db, page_for):
    rev = setup_queue(client, make, ["mine-a", "mine-b", "mine-c"])
    page = open_review(page_for, rev, "mine-a")
    assert press_and_wait(page, "1", "for mine-a.") == "mine-b"
    assert press_and_wait(page, "2", "for mine-b.") == "mine-c"

    page.get_by_role("link", name="My work").click()
    expect(page.locator("h1")).to_have_text("My work")
    assert page.url.endswith("/me/reviews?queue=claims")
    expect(page.locator("tr[data-external-id]")).to_have_count(2)
    expect(page.locator('tr[data-external-id="mine-a"]')).to_contain_text("fraud")
    expect(page.locator('tr[data-external-id="mine-b"]')).to_contain_text("legit")

    with page.expect_navigation():
        page.click('tr[data-external-id="mine-a"] button.reopen')
    assert page.url.endswith(REVIEW)
    expect(page.locator('#review-item[data-external-id="mine-a"]')).to_have_count(1)
    expect(page.locator("#review-item article h2")).to_have_text("mine-a")
    expect(page.locator("main > .flash.success")).to_contain_text("Reopened mine-a")
    assert events_of(db, "mine-a", "reopen") == ["was 'fraud'"]
    assert reviews_of(db, "mine-a") == []
    assert label_of(db, "mine-a") is None
    assert reviews_of(db, "mine-b") == [("legit", "wrong")]

    # Answered again from the keyboard; My work shows the new answer.
    assert press_and_wait(page, "3", "Saved “duplicate” for mine-a.") is not None
    assert reviews_of(db, "mine-a") == [("duplicate", "wrong")]
    page.goto("/me/reviews")
    expect(page.locator('tr[data-external-id="mine-a"]')).to_contain_text("duplicate")
    assert page.js_errors == []


# --- README screenshots --------------------------------------------------------------


def test_readme_screenshots_of_a_realistic_item(engine, page_for, artifacts):
    """The demo queue (generated claims, the display spec of app.demo.claims.FIELDS, a
    model trained on labelled history) at 1280x800 and 390 px wide. Written to
    tests/artifacts; to docs/screenshots too with LOUPE_UPDATE_SCREENSHOTS=1."""
    from app.demo.seed import seed_demo

    login = seed_demo(engine, history=150, incoming=20, gold_rate=0)  # claims in a known order
    page = page_for(
        {"name": login.reviewer, "password": login.password},
        REVIEW,
        viewport={"width": 1280, "height": 800},
    )
    expect(page.locator("#review-item article h2")).to_have_text(
        re.compile(r"^claim-\d{6}$"), timeout=WAIT_MS
    )
    # The display spec's words, candidates in plain words, the evidence.
    expect(page.locator("#review-item .payload-table")).to_contain_text("Merchant category")
    # The candidates are the model's 95% set, as long as the stored prediction says.
    from app.models import Item, Prediction

    shown = page.locator("#review-item article h2").text_content()
    with engine.connect() as conn:
        detail = conn.execute(
            select(Prediction.detail)
            .join(Item, Item.id == Prediction.item_id)
            .where(Item.external_id == shown)
            .order_by(Prediction.id.desc())
        ).first()[0]
    expect(page.locator("#review-item .candidate")).to_have_count(max(detail["set_size"], 1))
    # The 95% set's promise, as a frequency on average.
    expect(page.locator("#answer-note")).to_contain_text("19 times in 20")
    expect(page.locator('#review-item [data-key="1"]')).to_be_visible()
    evidence = page.locator('#review-item section[aria-labelledby="evidence-title"]')
    expect(evidence).to_be_visible()
    expect(evidence.locator("li").first).to_be_visible()
    page.evaluate("document.activeElement && document.activeElement.blur()")
    # At 1280x800 the item, the answers and the evidence fit without scrolling.
    assert page.evaluate("window.scrollY") == 0
    expect(page.locator("#review-item article h2")).to_be_in_viewport()
    expect(page.locator('#review-item [data-key="1"]')).to_be_in_viewport()
    expect(evidence.locator("li").first).to_be_in_viewport()

    folders = [artifacts]
    if os.environ.get("LOUPE_UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        folders.append(SCREENSHOTS)
    wide = page.screenshot()
    page.evaluate("window.scrollTo(0, 0)")
    page.set_viewport_size({"width": 390, "height": 844})
    # Nothing wider than the phone: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    narrow = page.screenshot(full_page=True)
    for folder in folders:
        Path(folder, "review.png").write_bytes(wide)
        Path(folder, "review-390.png").write_bytes(narrow)
    assert page.js_errors == []
