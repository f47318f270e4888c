"""The model registry pages and the model's candidate sets in a real browser (headless
Chromium, Playwright, the app on `live_server`): versions, promotion, roll-back, retraining,
who may do it, the model card, and what the review page says about conformal sets and
business-rule answers."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect
from sqlalchemy import select

from app.db import new_session, session_scope
from app.demo.claims import generate_claims
from app.learning.registry import card_limitations, finish_run
from app.learning.training import train_model_version
from app.models import Item, ModelVersion, Prediction, Queue, Review, TrainingRun, utcnow
from app.review.plain_words import candidate_figure
from tests.browser.test_review_browser import REVIEW, WAIT_MS, press_and_wait, push, shown_id
from tests.learning.test_training import _labelled

MODELS = "/queues/claims/models"
FLASH = "main > p.flash"
WHY = "#review-item header p.route-reason"


# --- helpers -------------------------------------------------------------------------


def _two_versions(make, engine):
    """claims-v1 trained and active, then claims-v2 trained on a poorer feature choice and
    kept as a candidate; returns (v1, v2, the reviewer who labelled the examples)."""
    make.queue(audit_rate=0, retrain_after=0)
    labeller = make.user("reviewer", queues=["claims"])
    queue_id = _labelled(engine, 300)
    with session_scope(engine) as s:
        v1 = train_model_version(db=s, queue_id=queue_id, seed=0).version.version
    _labelled(engine, 100, seed=2)
    with session_scope(engine) as s:
        queue = s.get(Queue, queue_id)
        # Only the currency, always EUR: worse than v1, so it is not promoted.
        queue.policy = {**queue.policy, "features": [{"name": "currency"}]}
        v2 = train_model_version(db=s, queue_id=queue.id, seed=0).version
        assert v2 is not None and not v2.active
        v2 = v2.version
    return v1, v2, labeller


def _row(page, version):
    return page.locator(f'.model-table tbody tr[data-version="{version}"]')


def _status(page, version):
    return _row(page, version).locator(".badge")


def _active(db) -> list[str]:
    return [v for (v,) in db.all(select(ModelVersion.version).where(ModelVersion.active))]


def _activated(db, version):
    return db.scalar(select(ModelVersion.activated_at).where(ModelVersion.version == version))


class _Dialogs(list):
    """The messages of the confirms the page shows, each accepted or cancelled as `accept`
    says at the time."""

    def __init__(self, page, accept: bool):
        super().__init__()
        self.accept = accept
        page.on("dialog", self._answer)

    def _answer(self, dialog):
        self.append(dialog.message)
        dialog.accept() if self.accept else dialog.dismiss()


def _posts(page) -> list[str]:
    """The POST requests to the models pages the page sends from now on."""
    sent: list[str] = []
    page.on(
        "request",
        lambda r: sent.append(r.url) if r.method == "POST" and MODELS in r.url else None,
    )
    return sent


def _mark(page) -> None:
    """Puts a marker on window: it survives htmx swaps, not a page load."""
    page.evaluate("window.__models_marker = 'kept'")


def _not_reloaded(page) -> None:
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert page.evaluate("window.__models_marker") == "kept"


PROMOTE_ASKS = "Make {} the active model? Waiting items will be re-scored by it."
ROLLBACK_ASKS = (
    "Roll back to {0}? {1} stops being the active model; waiting items will be re-scored by {0}."
)
REGISTRY = "#model-registry"
POLLING = "#model-registry[hx-trigger]"
IN_PROGRESS = "#model-registry .runs-in-progress"


# --- the models page -----------------------------------------------------------------


def test_lead_promotes_a_candidate_rolls_back_and_retrains(
    make, engine, db, page_for, run_jobs, artifacts
):
    v1, v2, _ = _two_versions(make, engine)
    assert (v1, v2) == ("claims-v1", "claims-v2")
    lead = make.user("lead", queues=["claims"])
    page = page_for(lead, MODELS)
    asked = _Dialogs(page, accept=True)

    expect(page.locator(".model-table tbody tr")).to_have_count(2)
    # Newest first.
    assert page.locator(".model-table tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.version)"
    ) == [v2, v1]
    expect(_status(page, v1)).to_have_text("active")
    expect(_status(page, v2)).to_have_text("candidate")
    expect(_row(page, v2)).to_contain_text("worse with confidence, kept as a candidate")
    # The active version cannot be made active, and there is nothing to roll back to yet.
    expect(_row(page, v1).get_by_role("button", name="Make active")).to_have_count(0)
    expect(page.locator("#rollback")).to_have_count(0)
    expect(page.locator(".run-table")).to_have_count(0)
    page.screenshot(path=str(artifacts / "models.png"), full_page=True)

    _row(page, v2).get_by_role("button", name="Make active").click()
    expect(page.locator(FLASH)).to_contain_text(f"{v2} is now the active model.")
    assert asked == [PROMOTE_ASKS.format(v2)]
    expect(_status(page, v2)).to_have_text("active")
    expect(_status(page, v1)).to_have_text("retired")
    expect(_row(page, v2).get_by_role("button", name="Make active")).to_have_count(0)
    expect(_row(page, v1).get_by_role("button", name="Make active")).to_have_count(1)
    assert _active(db) == [v2]
    assert _activated(db, v2) is not None

    expect(page.locator("#rollback")).to_have_text(f"Roll back to {v1}")
    page.locator("#rollback").click()
    expect(page.locator(FLASH)).to_contain_text(f"Rolled back: {v1} is the active model again.")
    assert asked[1:] == [ROLLBACK_ASKS.format(v1, v2)]
    expect(_status(page, v1)).to_have_text("active")
    expect(_status(page, v2)).to_have_text("retired")
    assert _active(db) == [v1]

    page.locator("#retrain-now").click()
    expect(page.locator(FLASH)).to_contain_text("Retraining has started.")
    assert db.count(TrainingRun) == 0  # only queued so far
    # Asked for, no worker yet: the page says so and watches for the run.
    expect(page.locator(IN_PROGRESS)).to_contain_text(
        re.compile(
            rf"Training run asked for \d+ s ago \(requested by {lead['name']}\): "
            r"waiting for a worker\."
        )
    )
    expect(page.locator(POLLING)).to_have_count(1)
    _mark(page)
    run_jobs()
    # No reload: the list catches up by itself, and stops watching.
    runs = page.locator(".run-table tbody tr")
    expect(runs).to_have_count(1)
    expect(runs.first).to_have_class(re.compile(r"\brun-skipped\b"))
    expect(runs.first.locator(".badge")).to_have_text("skipped")
    expect(runs.first).to_contain_text(f"requested by {lead['name']}")
    expect(runs.first).to_contain_text("no new training examples")
    # The skipped run made no version, and the rescoring jobs changed nothing either.
    expect(page.locator(".model-table tbody tr")).to_have_count(2)
    assert db.all(select(TrainingRun.status, TrainingRun.version_id)) == [("skipped", None)]
    assert db.count(ModelVersion) == 2
    assert _active(db) == [v1]
    expect(page.locator(IN_PROGRESS)).to_have_count(0)
    expect(page.locator(POLLING)).to_have_count(0)
    _not_reloaded(page)
    assert len(asked) == 2  # retraining asks nothing
    assert page.js_errors == []


def test_promote_and_roll_back_ask_first_and_cancelling_changes_nothing(make, engine, db, page_for):
    v1, v2, _ = _two_versions(make, engine)
    lead = make.user("lead", queues=["claims"])
    page = page_for(lead, MODELS)
    asked = _Dialogs(page, accept=False)
    posts = _posts(page)

    _row(page, v2).get_by_role("button", name="Make active").click()
    expect(page.locator(REGISTRY)).to_be_visible()
    assert asked == [PROMOTE_ASKS.format(v2)]
    assert posts == []
    expect(page.locator(FLASH)).to_have_count(0)
    expect(_status(page, v2)).to_have_text("candidate")
    assert _active(db) == [v1]
    assert _activated(db, v2) is None

    # v2 made active elsewhere: now there is something to roll back to.
    with session_scope(engine) as s:
        from app.learning.registry import activate

        activate(
            session=s,
            version=s.scalar(select(ModelVersion).where(ModelVersion.version == v2)),
            by="promoted by someone",
        )
    page.reload()
    expect(page.locator("#rollback")).to_have_text(f"Roll back to {v1}")
    page.locator("#rollback").click()
    expect(page.locator("#rollback")).to_be_visible()
    assert asked[1:] == [ROLLBACK_ASKS.format(v1, v2)]
    # A retired version asks too.
    _row(page, v1).get_by_role("button", name="Make active").click()
    assert asked[2:] == [PROMOTE_ASKS.format(v1)]
    page.wait_for_timeout(300)  # time for a POST that should not come
    assert posts == []
    expect(_status(page, v2)).to_have_text("active")
    expect(_status(page, v1)).to_have_text("retired")
    assert _active(db) == [v2]

    # Accepted while the list polls for a run: the answer is the whole page, not swapped
    # into the polling list (its hx-target and hx-swap must not reach the forms).
    with session_scope(engine) as s:
        s.add(TrainingRun(queue_id=s.scalar(select(Queue.id)), trigger="schedule"))
    page.reload()
    expect(page.locator(POLLING)).to_have_count(1)
    asked.accept = True
    _row(page, v1).get_by_role("button", name="Make active").click()
    expect(page.locator(FLASH)).to_contain_text(f"{v1} is now the active model.")
    assert _active(db) == [v1]
    expect(page.locator("main h1")).to_have_count(1)
    expect(page.locator(REGISTRY)).to_have_count(1)
    expect(page.locator(POLLING)).to_have_count(1)  # the run still runs
    assert page.js_errors == []


def test_promote_and_roll_back_work_without_javascript(make, engine, db, browser, live_server):
    v1, v2, _ = _two_versions(make, engine)
    lead = make.user("lead", queues=["claims"])
    context = browser.new_context(base_url=live_server, java_script_enabled=False)
    try:
        context.set_default_timeout(5_000)
        page = context.new_page()
        page.goto("/login")
        page.fill("input[name=name]", lead["name"])
        page.fill("input[name=password]", lead["password"])
        page.click("form button[type=submit]")
        page.goto(MODELS)
        # Plain forms: no confirm without JavaScript, the POST goes straight through.
        _row(page, v2).get_by_role("button", name="Make active").click()
        expect(page.locator(FLASH)).to_contain_text(f"{v2} is now the active model.")
        assert _active(db) == [v2]
        page.locator("#rollback").click()
        expect(page.locator(FLASH)).to_contain_text(f"Rolled back: {v1} is the active model again.")
        assert _active(db) == [v1]
    finally:
        context.close()


def test_a_run_in_progress_shows_itself_and_the_list_refreshes_when_it_ends(
    make, engine, db, page_for, artifacts
):
    make.queue(audit_rate=0, retrain_after=0)
    lead = make.user("lead", queues=["claims"])
    with session_scope(engine) as s:
        queue_id = s.scalar(select(Queue.id))
        run = TrainingRun(
            queue_id=queue_id,
            trigger="enough new labels",
            status="running",
            started_at=utcnow() - timedelta(seconds=12),
        )
        s.add(run)
        s.flush()
        run_id = run.id

    page = page_for(lead)
    polls = []
    page.on(
        "response",
        lambda r: (
            polls.append(r)
            if r.request.headers.get("hx-request") and r.url.endswith(MODELS)
            else None
        ),
    )
    page.goto(MODELS)
    _mark(page)
    banner = page.locator(IN_PROGRESS)
    expect(banner).to_have_text(
        re.compile(r"^\s*Training run started 1[2-5] s ago \(enough new labels\)\.\s*$")
    )
    expect(banner.locator("progress")).to_be_visible()
    page.screenshot(path=str(artifacts / "models-run-in-progress.png"), full_page=True)
    expect(page.locator(POLLING)).to_have_attribute("hx-trigger", "every 2s")
    expect(page.locator(".run-table tbody tr .badge")).to_have_text(["running"])

    with session_scope(engine) as s:
        finish_run(session=s, run_id=run_id, status="failed", message="out of memory")
    # The next poll brings the fragment with the run's end, and no trigger.
    expect(page.locator(".run-table tbody tr .badge")).to_have_text(["failed"])
    assert polls and "HX-Request" in polls[0].headers["vary"]
    assert polls[0].text().lstrip().startswith('<section id="model-registry"')
    expect(page.locator(".run-table tbody tr")).to_contain_text("out of memory")
    expect(banner).to_have_count(0)
    expect(page.locator(POLLING)).to_have_count(0)
    _not_reloaded(page)
    # And it has stopped asking.
    n = len(polls)
    page.wait_for_timeout(2500)
    assert len(polls) == n
    assert page.js_errors == []


def test_fragment_for_htmx_page_for_boosts_and_history_restores(make, page_for):
    make.queue(audit_rate=0, retrain_after=0)
    page = page_for(make.user("lead", queues=["claims"]), MODELS)
    for headers, fragment in (
        ({"HX-Request": "true"}, True),
        ({"HX-Request": "true", "HX-Boosted": "true"}, False),
        ({"HX-Request": "true", "HX-History-Restore-Request": "true"}, False),
        ({}, False),
    ):
        r = page.request.get(MODELS, headers=headers)
        body = r.text()
        assert r.status == 200 and "HX-Request" in r.headers["vary"], headers
        assert body.lstrip().startswith('<section id="model-registry"') == fragment, headers
        assert ("<html" in body) != fragment, headers


def test_retrain_with_a_worker_shows_the_run_then_the_new_version_without_reload(
    make, engine, db, page_for, worker_process
):
    v1, v2, _ = _two_versions(make, engine)
    _labelled(engine, 60, seed=3)  # something new to train on
    lead = make.user("lead", queues=["claims"])
    worker_process()
    page = page_for(lead, MODELS)
    _mark(page)
    expect(page.locator(POLLING)).to_have_count(0)

    page.locator("#retrain-now").click()
    # Asked for, starting or running, depending on how far the worker has come.
    banner = page.locator(IN_PROGRESS)
    expect(banner).to_contain_text(
        re.compile(rf"Training run (asked for|started) \d+ s ago \(requested by {lead['name']}\)")
    )
    expect(banner.locator("progress")).to_have_count(1)
    expect(page.locator(POLLING)).to_have_count(1)

    v3 = _row(page, "claims-v3")
    expect(v3).to_have_count(1, timeout=30_000)
    expect(page.locator(".model-table tbody tr")).to_have_count(3)
    first_run = page.locator(".run-table tbody tr").first
    expect(first_run.locator(".badge")).to_have_text("trained")
    expect(first_run).to_contain_text("→ claims-v3")
    expect(first_run).to_contain_text(f"requested by {lead['name']}")
    expect(banner).to_have_count(0)
    expect(page.locator(POLLING)).to_have_count(0)
    _not_reloaded(page)
    assert db.all(select(TrainingRun.status)) == [("trained",)]
    assert page.js_errors == []


def test_reviewer_sees_the_models_but_cannot_change_them(make, engine, db, redis, page_for):
    v1, v2, reviewer = _two_versions(make, engine)
    page = page_for(reviewer, MODELS)

    expect(page.locator(".model-table tbody tr")).to_have_count(2)
    expect(_status(page, v1)).to_have_text("active")
    expect(_status(page, v2)).to_have_text("candidate")
    main = page.locator("main")
    for name in ("Make active", "Retrain now", "Roll back"):
        expect(main.get_by_role("button", name=name)).to_have_count(0)
    expect(page.locator("main form")).to_have_count(0)
    # Nor on the candidate's card.
    _row(page, v2).get_by_role("link", name=v2).click()
    expect(page.locator("h1")).to_contain_text(f"Model card: {v2}")
    expect(page.locator("main form")).to_have_count(0)

    # Posting anyway, with a valid CSRF token from this session, is refused.
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    for path, action in (
        (f"{MODELS}/{v2}/promote", "promote"),
        (f"{MODELS}/rollback", "promote"),
        (f"{MODELS}/retrain", "retrain"),
    ):
        r = page.request.post(path, form={"csrf_token": token}, max_redirects=0)
        assert r.status == 403, (path, r.status)
        assert f"Your role (reviewer) may not {action}" in r.text()

    assert _active(db) == [v1]
    assert _activated(db, v2) is None
    assert db.count(TrainingRun) == 0
    assert redis.keys("rq:job:*") == []
    page.goto(MODELS)
    expect(_status(page, v2)).to_have_text("candidate")
    assert page.js_errors == []


# --- the model card ------------------------------------------------------------------


def test_model_card_shows_the_stored_metrics(make, engine, db, page_for, artifacts):
    make.queue(audit_rate=0, retrain_after=0)
    make.user("reviewer", queues=["claims"])
    queue_id = _labelled(engine, 300)
    with session_scope(engine) as s:
        version = train_model_version(db=s, queue_id=queue_id, seed=0).version.version
    with new_session(engine) as s:
        row = s.scalar(select(ModelVersion).where(ModelVersion.version == version))
        s.expunge(row)
    m = row.metrics
    lead = make.user("lead", queues=["claims"])
    page = page_for(lead, MODELS)
    _row(page, version).get_by_role("link", name=version).click()
    expect(page.locator("h1")).to_have_text(f"Model card: {version} active")
    assert page.url.endswith(f"{MODELS}/{version}")
    page.screenshot(path=str(artifacts / "model-card.png"), full_page=True)

    intended = page.locator("#intended-use")
    expect(intended).to_contain_text("Suggests answers for the review queue “claims”")
    expect(intended).to_contain_text("one of: legit, fraud, duplicate")
    expect(intended).to_contain_text("95% candidate set")
    snapshot = page.locator("#data code").first
    expect(snapshot).to_have_text(row.snapshot)
    assert re.fullmatch(r"[0-9a-f]{64}", row.snapshot)

    metrics = page.locator("#metrics table").first
    for name, key in (("Accuracy", "accuracy"), ("Macro F1", "macro_f1")):
        expect(
            metrics.locator("tr").filter(has=page.locator(f'th:text-is("{name}")')).locator("td")
        ).to_have_text(f"{m[key]:.3f}")
    expect(page.locator("#metrics h2")).to_have_text(
        f"Metrics on {m['n_eval']} held-out human labels"
    )

    # Per answer: one row per label, with the stored figures.
    per_class = page.locator("#metrics table").nth(1).locator("tbody tr")
    expect(per_class).to_have_count(len(m["per_class"]))
    shown = {
        cells[0]: cells[1:]
        for cells in per_class.evaluate_all(
            "rows => rows.map(r => [...r.cells].map(c => c.textContent.trim()))"
        )
    }
    assert shown == {
        label: [f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", str(s["support"])]
        for label, s in m["per_class"].items()
    }
    assert set(shown) == {"legit", "fraud", "duplicate"}

    # The confusion matrix: a cell per (true, predicted) pair, the diagonal marked.
    labels, matrix = m["confusion"]["labels"], m["confusion"]["matrix"]
    confusion = page.locator("#confusion")
    expect(confusion.locator("thead th")).to_have_text(["true ↓ / predicted →", *labels])
    expect(confusion.locator("tbody tr")).to_have_count(len(labels))
    expect(confusion.locator("tbody td")).to_have_count(len(labels) ** 2)
    expect(confusion.locator("tbody th")).to_have_text(labels)
    cells = confusion.locator("tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.querySelectorAll('td')].map(c => Number(c.textContent)))"
    )
    assert cells == matrix
    assert sum(map(sum, cells)) == m["n_eval"]
    diag = confusion.locator("td.diag").evaluate_all("cs => cs.map(c => Number(c.textContent))")
    assert diag == [matrix[i][i] for i in range(len(labels))]

    coverage = page.locator("#coverage")
    expect(coverage).to_have_text(f"{m['coverage'] * 100:.1f}% (target 95%)")
    assert m["coverage_target"] == 0.95
    # What the sets promise, in words, and the measured coverage with its interval.
    guarantee = row.card["conformal"]["guarantee"]
    expect(page.locator("#guarantee")).to_contain_text(guarantee[:1].upper() + guarantee[1:])
    expect(page.locator("#guarantee")).to_contain_text("exchangeable")
    expect(page.locator("#coverage-held-out")).to_have_text(
        f"{m['coverage'] * 100:.1f}% (95% interval {m['coverage_lower'] * 100:.1f}–"
        f"{m['coverage_upper'] * 100:.1f}%)"
    )
    expect(page.locator("#coverage-recent")).to_have_text("no decisions yet")
    expect(page.locator("#coverage-per-answer tbody tr")).to_have_count(
        len(m["coverage_per_answer"])
    )

    expected = card_limitations(row)
    expect(page.locator("#limitations li")).to_have_text(expected)
    assert expected[-1].startswith("It has only seen the payload fields")
    assert page.js_errors == []


# --- the review page -----------------------------------------------------------------


def _note_for(detail) -> str:
    size = detail["set_size"]
    if detail.get("best_guess_only"):
        return (
            "The model has no answer it trusts for this one; its best guess is shown. "
            "Check it carefully."
        )
    if size == 1:
        return (
            "Only one answer is likely enough to list. On average, lists like this hold the "
            "right answer 19 times in 20, so it can still be wrong."
        )
    return (
        f"The right answer is usually one of these {size}: on average, lists like this hold "
        "it 19 times in 20."
    )


def _why_for(detail) -> str:
    size = detail["set_size"]
    if detail.get("best_guess_only"):
        return "The model has no answer it trusts for this one; its best guess is shown."
    if size == 1:
        return "The model's answer is not sure enough to accept without a person."
    return "The model could not narrow it down to one answer."


def test_review_page_shows_the_models_candidate_set(client, make, engine, db, page_for):
    # Threshold 1: no calibrated confidence clears it, so every scored item comes to review.
    make.queue(audit_rate=0, retrain_after=0, auto_accept_threshold=1)
    reviewer = make.user("reviewer", queues=["claims"])
    queue_id = _labelled(engine, 300)
    with session_scope(engine) as s:
        version = train_model_version(db=s, queue_id=queue_id, seed=0).version.version
    producer = make.user("scientist", queues=["claims"])
    claims = generate_claims(12, seed=9)
    push(
        client,
        producer,
        [{"external_id": f"new-{c['external_id']}", "payload": c["payload"]} for c in claims],
    )
    stored = {
        ext: (p.source, p.model_version, p.candidates, p.detail)
        for ext, p in db.all(
            select(Item.external_id, Prediction)
            .join(Prediction, Prediction.item_id == Item.id)
            .where(Item.external_id.like("new-%"))
        )
    }
    assert len(stored) == 12
    assert {(s, v) for s, v, _, _ in stored.values()} == {("model", version)}
    waiting = {e for (e,) in db.all(select(Item.external_id).where(Item.status == "pending"))}
    assert len(waiting) >= 4, waiting

    page = page_for(reviewer, REVIEW)
    expect(page.locator("#review-item article h2")).to_have_text(
        re.compile(r"^new-"), timeout=WAIT_MS
    )
    sizes = []
    for n in range(4):
        current = shown_id(page)
        _, _, cands, detail = stored[current]
        assert (
            set(detail) >= {"coverage", "set_size", "mode", "margin"} and detail["coverage"] == 0.95
        )
        assert detail["set_size"] >= 1 and "unseen" not in detail
        sizes.append(detail["set_size"])
        expect(page.locator("#answer-note")).to_have_text(_note_for(detail))
        expect(page.locator("#answers-title + small")).to_have_text(f"from {version}")
        expect(page.locator(WHY)).to_have_text(f"Why you see this: {_why_for(detail)}")
        buttons = page.locator("#review-item button.candidate")
        expect(buttons).to_have_count(detail["set_size"])
        shown = buttons.evaluate_all(
            "bs => bs.map(b => [b.value, b.dataset.key, b.querySelector('small').textContent])"
        )
        assert [(v, k) for v, k, _ in shown] == [
            (c["label"], str(k)) for k, c in enumerate(cands, 1)
        ]
        # One figure per candidate: its calibrated score as a frequency.
        for (_, _, words), c in zip(shown, cands, strict=True):
            assert words == candidate_figure(c["score"], calibrated=True), (words, c)
        # Key 1 on the first items, then the second candidate's key when there is one.
        key = "1" if n < 2 else str(min(2, len(cands)))
        after = press_and_wait(page, key, f"for {current}.")
        label = db.scalar(
            select(Review.label)
            .join(Item, Item.id == Review.item_id)
            .where(Item.external_id == current)
        )
        assert label == cands[int(key) - 1]["label"], (current, key, cands)
        assert after != current
    # These claims give sets of two and three answers, not only the top one.
    assert max(sizes) >= 2, sizes
    assert page.js_errors == []


def test_review_page_shows_a_business_rule_answer(client, make, db, page_for):
    make.queue(
        rules=[
            {"name": "large amount", "field": "amount", "op": ">=", "value": 1000, "label": "fraud"}
        ],
        audit_rate=0,
    )
    producer = make.user("scientist", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    push(client, producer, [{"external_id": "big", "payload": {"amount": 5000, "country": "FR"}}])
    page = page_for(reviewer, REVIEW)
    expect(page.locator("#review-item article h2")).to_have_text("big", timeout=WAIT_MS)

    buttons = page.locator("#review-item button.candidate")
    expect(buttons).to_have_count(1)
    expect(buttons.first).to_have_attribute("value", "fraud")
    expect(buttons.first.locator("small")).to_have_text("suggested by a business rule")
    expect(buttons.first).not_to_contain_text("%")
    expect(page.locator("#answer-note")).to_have_text(
        "No model answer (no model has been trained for this queue yet): the business rule "
        "“large amount” suggests this."
    )
    expect(page.locator(WHY)).to_have_text(
        "Why you see this: No model answer (no model has been trained for this queue yet); "
        "the business rule “large amount” suggests one."
    )
    expect(page.locator("#answers-title + small")).to_have_text("from rules")

    press_and_wait(page, "1", "for big.")
    assert db.all(select(Review.label)) == [("fraud",)]
    assert page.js_errors == []


def test_hostile_rule_name_label_and_payload_render_as_text(client, make, db, page_for):
    rule = "<img src=x onerror=alert(1)>"
    label = "<svg onload=alert(3)>"
    note = "<script>window.__pwned = 1</script><img src=y onerror=alert(2)>"
    make.queue(
        labels=("legit", label),
        rules=[{"name": rule, "field": "amount", "op": ">=", "value": 1000, "label": label}],
        audit_rate=0,
    )
    producer = make.user("scientist", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    push(
        client,
        producer,
        [
            # The first comes with the whole page, the second through an htmx swap.
            {"external_id": "h-page", "payload": {"amount": 5000, "note": note}, "priority": 2},
            {"external_id": "h-swap", "payload": {"amount": 7000, "note": note}, "priority": 1},
        ],
    )
    page = page_for(reviewer)
    dialogs: list[str] = []

    def on_dialog(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(REVIEW)

    def check(external_id):
        expect(page.locator("#review-item article h2")).to_have_text(external_id)
        expect(page.locator("#answer-note")).to_have_text(
            "No model answer (no model has been trained for this queue yet): the business "
            f"rule “{rule}” suggests this."
        )
        button = page.locator("#review-item button.candidate")
        expect(button).to_have_count(1)
        expect(button).to_have_attribute("value", label)
        expect(button.locator(".label")).to_contain_text(label)
        expect(page.locator(WHY)).to_contain_text(rule)
        expect(
            page.locator("#review-item .payload-table").get_by_text(note, exact=True)
        ).to_be_visible()
        assert page.locator("#review-item img, #review-item svg, #review-item script").count() == 0
        assert page.locator("[onerror], [onload]").count() == 0

    check("h-page")
    assert press_and_wait(page, "1", "for h-page.") == "h-swap"
    check("h-swap")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []
    assert page.js_errors == []
    assert db.all(select(Review.label)) == [(label,)]
