"""The review page's sentences: one figure per candidate, what a list of answers promises on
average, and why a person sees the item, in a case worker's words (issue 8)."""

from __future__ import annotations

import re

import pytest

from app.learning.explain import Contribution
from app.queues.service import Policy
from app.review import plain_words
from app.review.plain_words import why_you_see_this
from app.review.presenter import _evidence
from app.routing.decision import Route, route_item
from app.routing.placement import RESCORED_NOTE, Placement, first_reason, rescored_reason
from app.states import RouteDecision

JARGON = re.compile(
    r"calibrated|candidate set|conformal|threshold|margin|audit \(|\d\.\d|claims-v\d", re.I
)


def _cands(*scores):
    labels = ["fraud", "legit", "duplicate"]
    return [{"label": lab, "score": s} for lab, s in zip(labels, scores, strict=False)]


ROUTES = {
    "producer below threshold": dict(candidates=_cands(0.55, 0.45)),
    "producer too close": dict(candidates=_cands(0.91, 0.7)),
    "no prediction": dict(candidates=None),
    "set of two": dict(candidates=_cands(0.6, 0.3), detail={"set_size": 2, "coverage": 0.95}),
    "empty set": dict(candidates=_cands(0.4, 0.3), detail={"set_size": 0, "coverage": 0.9}),
    "one, not sure": dict(candidates=_cands(0.7, 0.2), detail={"set_size": 1, "coverage": 0.95}),
    "no model, a rule": dict(
        candidates=[{"label": "fraud", "score": None}],
        detail={"fallback": "no trained model yet", "rule": "large amount"},
    ),
    "slow model, no rule": dict(
        candidates=None, detail={"fallback": "the model did not answer within 0.5 s"}
    ),
    "broken model": dict(
        candidates=None, detail={"fallback": "the active model cannot be loaded (checksum)"}
    ),
}


@pytest.mark.parametrize("case", ROUTES)
def test_every_routing_reason_reads_in_plain_words(case):
    policy = Policy(auto_accept_threshold=0.9, min_margin=0.3, audit_rate=0)
    route = route_item(policy=policy, queue_name="q", external_id="x", **ROUTES[case])
    assert route.decision == "review"
    words = plain_words.why_you_see_this(route.reason, route.decision)
    assert words and words != route.reason and words[0].isupper() and words.endswith(".")
    assert not JARGON.search(words), (route.reason, words)
    if "rule" in case and "no rule" not in case:
        assert "“large amount”" in words


def test_an_audit_says_it_is_a_random_check():
    policy = Policy(auto_accept_threshold=0.5, min_margin=0.0, audit_rate=1.0)
    route = route_item(policy=policy, queue_name="q", external_id="x", candidates=_cands(0.99))
    assert route.decision == "audit"
    assert plain_words.why_you_see_this(route.reason, "audit").startswith("A random check")


def test_notes_follow_the_original_reason_and_are_said_once():
    reason = (
        "the 95% candidate set holds 2 answers: a person must choose"
        "; re-scored by a newer model while waiting for review"
        "; reviewers disagreed: needs adjudication"
    )
    assert plain_words.why_you_see_this(reason, "review") == (
        "The model could not narrow it down to one answer. A newer model has looked at it "
        "again since it arrived. Reviewers disagreed on it."
    )
    # Rows re-scored before the note was appended say at least that.
    old = plain_words.why_you_see_this("re-scored by claims-v2 while waiting for review", "review")
    assert old == "A newer model has looked at it again since it arrived."


def test_one_figure_per_candidate_as_a_frequency():
    assert plain_words.candidate_figure(0.79, calibrated=True, noun="claim") == (
        "about 8 in 10 similar claims"
    )
    assert plain_words.candidate_figure(0.97, calibrated=True) == "more than 9 in 10 similar items"
    assert plain_words.candidate_figure(0.01, calibrated=True) == "fewer than 1 in 20 similar items"
    # A producer's score is not Loupe's to vouch for: it says whose it is.
    assert plain_words.candidate_figure(0.79, calibrated=False) == (
        "score 79 of 100, from the sending system"
    )
    assert plain_words.candidate_figure(None, calibrated=False) == "suggested by a business rule"


@pytest.mark.parametrize(
    ("size", "coverage", "expected"),
    [
        (1, 0.95, "On average, lists like this hold the right answer 19 times in 20"),
        (2, 0.9, "usually one of these 2: on average, lists like this hold it 9 times in 10"),
        (0, 0.95, "no answer it trusts"),
        (14, 0.95, "the 9 likeliest are shown"),
    ],
)
def test_the_list_promises_what_the_statistics_mean(size, coverage, expected):
    note = plain_words.answer_note({"set_size": size, "coverage": coverage}, shown=9)
    assert expected in note
    # Never a certainty: no "sure", no percentage next to the candidates' figures.
    assert "sure" not in note and "%" not in note


def test_evidence_says_how_hard_each_value_pushed_and_only_for_values_the_item_has():
    ev = {
        "towards": [
            Contribution("amount", "number", 1250.0, 2.0),
            Contribution("tenure", "number", None, 1.5),  # not in the payload
            Contribution("note", "word", "twice", 0.3),
        ],
        "against": [Contribution("country", "category", "FR", -0.9)],
    }
    payload = {"amount": 1250.0, "note": "charged twice", "country": "FR"}
    towards, against = _evidence(ev, payload, {"amount": {"format": "money", "unit": "EUR"}})
    assert [(e["text"], e["strength"], e["pct"]) for e in towards] == [
        ("Amount 1,250.00 EUR", "strongly", 100),
        ("Note mentions “twice”", "slightly", 15),
    ]
    assert [(e["text"], e["strength"]) for e in against] == [("Country is FR", "somewhat")]


def test_a_rescore_keeps_the_first_reason_and_notes_the_change_once():
    first = "the 95% candidate set holds 2 answers: a person must choose"
    same = Placement(Route(RouteDecision.REVIEW, first), Route(RouteDecision.REVIEW, first))
    once = rescored_reason(first, "review", same, "claims-v2")
    assert once == first + "; " + RESCORED_NOTE
    assert rescored_reason(once, "review", same, "claims-v3") == once  # once, not per re-score
    assert rescored_reason(None, "review", same, "claims-v2") == RESCORED_NOTE
    sure = "the only answer in the 75% candidate set, calibrated confidence 0.97 ≥ 0.90"
    moved = Placement(
        Route(RouteDecision.AUTO_ACCEPT, sure), Route(RouteDecision.AUTO_ACCEPT, sure)
    )
    rerouted = rescored_reason(once, "review", moved, "claims-v3")
    assert rerouted == f"{first}; re-routed by claims-v3: {sure}"
    assert first_reason(rerouted) == first
    # A later re-route replaces the earlier note; the first reason still leads.
    back = Placement(Route(RouteDecision.REVIEW, "x"), Route(RouteDecision.REVIEW, "x"))
    assert (
        rescored_reason(rerouted, "audit", back, "claims-v4")
        == f"{first}; re-routed by claims-v4: x"
    )
    assert len(rescored_reason("y" * 600, "review", moved, "v")) == 500


def test_a_re_routed_item_says_why_it_is_here_now():
    reason = (
        "random audit (5%) of an item that would be auto-accepted (confidence 0.93); "
        "re-routed by claims-v3: calibrated confidence 0.71 is below the auto-accept "
        "threshold 0.90"
    )
    words = why_you_see_this(reason, RouteDecision.REVIEW)
    assert words.startswith("The model's answer is not sure enough to accept without a person.")
    assert "A newer model has looked at it again" in words
    assert "random check" not in words
