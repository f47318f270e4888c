"""Agreement between reviewers (Krippendorff's alpha, Cohen's kappa, bootstrap intervals,
item counts) and each reviewer's own figures (My stats), over the API and the pages."""

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score

from app.desk.agreement import _kappa
from tests.conftest import item
from tests.review.test_review_pages import login

INGEST = "/api/v1/queues/{}/items"

F, L, D = "fraud", "legit", "duplicate"
FIRST = [F, F, L, L, D, D, F, L, D, F, L, D]
SECOND = [F, F, L, L, D, D, F, L, D, L, L, F]  # two disagreements


def _answer_all(client, user, queue, answers):
    """The user claims every item of the queue in turn and answers from `answers` by id."""
    given = []
    while True:
        r = client.post(f"/api/v1/queues/{queue}/claims", headers=user["headers"])
        if r.status_code == 204:
            return given
        claim = r.json["claim"]
        ext = claim["item"]["external_id"]
        label = answers[int(ext.split("-")[1])]
        d = client.post(
            f"/api/v1/claims/{claim['token']}/decision",
            json={"label": label},
            headers=user["headers"],
        )
        assert d.status_code == 200, d.json
        given.append(ext)


def _two_reviewers(client, make, queue="claims", n=12):
    make.queue(name=queue, audit_rate=0, reviews_required=2, gold_feedback_to_reviewers=True)
    producer = make.user("scientist", queues=[queue])
    a, b = (make.user("reviewer", queues=[queue]) for _ in range(2))
    client.post(
        INGEST.format(queue),
        headers=producer["headers"],
        json={"items": [item(f"i-{i}") for i in range(n)]},
    )
    _answer_all(client, a, queue, FIRST)
    _answer_all(client, b, queue, SECOND)
    return producer, a, b


def test_alpha_and_kappa_with_bootstrap_intervals_and_counts(client, make):
    _producer, a, b = _two_reviewers(client, make)
    lead = make.user("lead", queues=["claims"])
    r = client.get("/api/v1/queues/claims/agreement?days=30", headers=lead["headers"])
    assert r.status_code == 200, r.json
    report = r.json
    assert report["items"] == 12 and report["days"] == 30
    codes = {label: i for i, label in enumerate(sorted({F, L, D}))}
    matrix = np.array([[codes[x] for x in FIRST], [codes[x] for x in SECOND]], dtype=float)
    expected_alpha = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
    alpha = report["alpha"]
    assert alpha["estimate"] == round(expected_alpha, 4) and alpha["n"] == 12
    assert alpha["lower"] <= alpha["estimate"] <= alpha["upper"] and alpha["note"] is None
    (pair,) = report["pairs"]
    assert pair["reviewers"] == sorted([a["name"], b["name"]])
    kappa = pair["kappa"]
    assert kappa["estimate"] == round(cohen_kappa_score(FIRST, SECOND), 4) and kappa["n"] == 12
    assert kappa["lower"] < kappa["estimate"] <= kappa["upper"] <= 1
    # A fixed seed: the same data gives the same intervals.
    again = client.get("/api/v1/queues/claims/agreement?days=30", headers=lead["headers"]).json
    assert again["alpha"] == alpha and again["pairs"] == report["pairs"]
    # The dashboard draws the pair's kappa with its whisker, alpha as the dashed line.
    panels = client.get("/api/v1/queues/claims/dashboard?window=30d", headers=lead["headers"]).json[
        "panels"
    ]
    drawn = next(p for p in panels if p["key"] == "agreement")
    (row,) = drawn["data"]["rows"]
    assert row["name"] == " & ".join(pair["reviewers"]) and row["n"] == 12
    assert (row["estimate"], row["lower"]) == (kappa["estimate"], kappa["lower"])
    assert drawn["data"]["reference"] == alpha["estimate"]


def test_too_few_items_say_so_instead_of_a_figure(client, make):
    _two_reviewers(client, make, n=3)
    lead = make.user("lead", queues=["claims"])
    report = client.get("/api/v1/queues/claims/agreement", headers=lead["headers"]).json
    assert report["items"] == 3
    assert report["alpha"]["estimate"] is None and "too few items: 3" in report["alpha"]["note"]
    assert report["pairs"][0]["kappa"]["estimate"] is None
    assert report["pairs"][0]["kappa"]["n"] == 3


def test_agreement_is_for_leads_scientists_and_admins_of_the_queue(client, make):
    make.queue()
    make.queue(name="other")
    reviewer = make.user("reviewer", queues=["claims"])
    scientist = make.user("scientist", queues=["claims"])
    outsider = make.user("lead", queues=["other"])
    url = "/api/v1/queues/claims/agreement"
    assert client.get(url, headers=reviewer["headers"]).status_code == 403
    assert client.get(url, headers=outsider["headers"]).status_code == 404
    assert client.get(url).status_code == 401
    empty = client.get(url, headers=scientist["headers"])
    assert empty.status_code == 200 and empty.json["items"] == 0 and empty.json["pairs"] == []
    for days in ("0", "abc", "99999", "-3", "1.5", "<script>"):
        r = client.get(f"{url}?days={days}", headers=scientist["headers"])
        assert r.status_code == 422 and r.json["details"][0]["field"] == "days"


def test_the_bootstrap_kappa_is_cohens_kappa():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, size=(20, 30))
    b = np.where(rng.random((20, 30)) < 0.7, a, rng.integers(0, 3, size=(20, 30)))
    ours = _kappa(a, b, 3)
    for row in range(20):
        assert np.isclose(ours[row], cohen_kappa_score(a[row], b[row]))


def test_my_stats_counts_decisions_time_agreement_and_gold_where_shown(client, make):
    _producer, a, _b = _two_reviewers(client, make)
    make.queue(name="quiet", audit_rate=0, gold_rate=1)
    lead = make.user("lead", queues=["claims", "quiet"])
    client.post(
        "/api/v1/queues/claims/items",
        headers=lead["headers"],
        json={"items": [item("g-0", gold_label=F), item("g-1", gold_label=L)]},
    )
    r = client.patch("/api/v1/queues/claims/policy", json={"gold_rate": 1}, headers=lead["headers"])
    assert r.status_code == 200, r.json
    # `a` answers both gold items: one right, one wrong.
    _answer_all(client, a, "claims", {0: F, 1: F})
    stats = client.get("/api/v1/me/stats", headers=a["headers"]).json
    assert stats["today"] == stats["week"] == 14
    assert stats["median_seconds_per_item"] is not None
    # On the 12 items both answered, `a` matched the final label or `b` on 10.
    assert stats["agreement"]["n"] == 12 and stats["agreement"]["estimate"] == round(10 / 12, 4)
    (claims,) = [q for q in stats["queues"] if q["queue"] == "claims"]
    assert claims["gold_accuracy"]["n"] == 2 and claims["gold_accuracy"]["estimate"] == 0.5
    # The lead belongs to "quiet", which does not show gold accuracy to reviewers.
    lead_stats = client.get("/api/v1/me/stats", headers=lead["headers"]).json
    (quiet,) = [q for q in lead_stats["queues"] if q["queue"] == "quiet"]
    assert "gold_accuracy" not in quiet and lead_stats["today"] == 0

    login(client, a)
    page = client.get("/me/stats").get_data(as_text=True)
    assert "My stats" in page and "14</strong> item(s) today" in page and "50%" in page


def test_the_reviewers_page_shows_gold_and_agreement_and_leads_mark_items(app, client, make):
    make.queue(audit_rate=0)
    producer = make.user("scientist", queues=["claims"])
    lead = make.user("lead", queues=["claims"])
    reviewer = make.user("reviewer", queues=["claims"])
    client.post(
        INGEST.format("claims"),
        headers=producer["headers"],
        json={"items": [item("<b>x</b>"), item("y", gold_label=L)]},
    )
    login(client, reviewer)
    assert client.get("/queues/claims/reviewers").status_code == 403
    assert "My stats" in client.get("/queues").get_data(as_text=True)
    client = app.test_client()
    csrf = login(client, lead)
    page = client.get("/queues/claims/reviewers").get_data(as_text=True)
    assert 'id="gold"' in page and 'id="agreement"' in page and "Krippendorff" in page
    assert "too few items: 0" in page
    r = client.post(
        "/queues/claims/gold",
        data={"external_id": "<b>x</b>", "label": F, "csrf_token": csrf},
    )
    assert r.status_code == 303
    page = client.get("/queues/claims/reviewers").get_data(as_text=True)
    assert "&lt;b&gt;x&lt;/b&gt; is a gold item now" in page and "<b>x</b>" not in page
    r = client.post(
        "/queues/claims/gold", data={"external_id": "y", "label": "nope", "csrf_token": csrf}
    )
    assert "is not one of this queue" in client.get("/queues/claims/reviewers").get_data(
        as_text=True
    )
    # Without the CSRF token, nothing changes.
    r = client.post("/queues/claims/gold/y/unmark")
    assert r.status_code in (400, 403)
    r = client.post("/queues/claims/gold/y/unmark", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert "y is no longer gold" in client.get("/queues/claims/reviewers").get_data(as_text=True)
