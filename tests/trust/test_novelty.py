"""The novelty detector and the training-input profile, on data the model did not see:
ordinary items are flagged about as rarely as promised, shifted ones mostly flagged."""

import datetime as dt

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.datasets import load_breast_cancer, load_digits, load_wine

from app.demo.claims import generate_claims
from app.learning import artifacts
from app.learning.conformal import Conformal
from app.learning.drift import psi
from app.learning.fitting import fit
from app.learning.novelty import ALPHA, Novelty, features_step
from app.learning.profile import known_values
from app.learning.scoring import LoadedModel
from app.learning.snapshot import Row, Snapshot, hash_rows
from app.models import Queue
from app.queues.service import Policy
from app.routing.decision import route_item

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _fitted(payloads, labels, seed=0):
    rows = [
        Row(i + 1, p, str(y), "human", T0 + dt.timedelta(minutes=i))
        for i, (p, y) in enumerate(zip(payloads, labels, strict=True))
    ]
    fitted = fit(
        Snapshot(rows=rows, content_hash=hash_rows(rows)),
        queue=Queue(id=1, name="q", policy={}),
        seed=seed,
    )
    card = fitted.card
    forest = artifacts.load(*fitted.novelty)
    return LoadedModel(
        1,
        "q-v1",
        fitted.model,
        card["columns"],
        Conformal.from_dict(card["conformal"]),
        card["profile"],
        known_values(card["profile"]),
        Novelty(forest, card["novelty"]["threshold"]),
    )


def _novel(model, payloads) -> np.ndarray:
    return model.novelty.flags(features_step(model.model).transform(model.inputs(payloads)))


def _rate(flags) -> str:
    k, n = int(flags.sum()), len(flags)
    ci = binomtest(k, n).proportion_ci(0.95, method="exact")
    return f"{k}/{n} = {k / n:.3f} (95% CI {ci.low:.3f}-{ci.high:.3f})"


def _table(bunch):
    names = [f"f{j}" for j in range(bunch.data.shape[1])]
    return [dict(zip(names, map(float, row), strict=True)) for row in bunch.data]


def _sklearn_set(loader):
    bunch = loader()
    order = np.random.default_rng(0).permutation(len(bunch.target))
    payloads = _table(bunch)
    return [payloads[i] for i in order], [bunch.target[i] for i in order]


def _demo_set():
    claims = generate_claims(3000, seed=21)
    return [c["payload"] for c in claims], [c["label"] for c in claims]


@pytest.mark.parametrize(
    ("name", "data", "n_fit"),
    [
        ("demo claims", _demo_set, 2000),
        ("digits", lambda: _sklearn_set(load_digits), 1200),
        ("breast cancer", lambda: _sklearn_set(load_breast_cancer), 400),
        ("wine", lambda: _sklearn_set(load_wine), 120),
    ],
)
def test_ordinary_unseen_items_are_flagged_about_as_rarely_as_promised(name, data, n_fit):
    payloads, labels = data()
    model = _fitted(payloads[:n_fit], labels[:n_fit])
    flags = _novel(model, payloads[n_fit:])
    _, unlike = model.assess(payloads[n_fit:])
    guard = np.array([bool(u) for u in unlike])
    said = (
        f"{name}: novelty flags on unseen ordinary items {_rate(flags)}; alpha {ALPHA}; "
        f"the whole guard (ranges, categories too) {_rate(guard)}"
    )
    # The conformal p-value promises at most ALPHA in expectation: the measured rate must be
    # consistent with it (its exact 95% interval reaches down to ALPHA or below).
    k, n = int(flags.sum()), len(flags)
    assert binomtest(k, n).proportion_ci(0.95, method="exact").low <= ALPHA, said
    # Ranges and categories add little on ordinary items: auto-accepting is not choked.
    assert guard.mean() <= 0.05, said


def test_inverted_digits_are_flagged_by_the_novelty_score():
    payloads, labels = _sklearn_set(load_digits)
    model = _fitted(payloads[:1200], labels[:1200])
    fresh = payloads[1200:]
    inverted = [{k: 16.0 - v for k, v in p.items()} for p in fresh]
    normal_flags, inverted_flags = _novel(model, fresh), _novel(model, inverted)
    said = f"digits: normal {_rate(normal_flags)}, inverted {_rate(inverted_flags)}"
    assert binomtest(int(inverted_flags.sum()), len(inverted)).proportion_ci().low >= 0.8, said
    assert normal_flags.mean() <= 0.03, said
    # The whole guard (ranges too) sends every inverted digit to a person; the route reason
    # names a pixel.
    proba, unlike = model.assess(inverted)
    routes = [
        route_item(
            policy=Policy(audit_rate=0),
            candidates=cands,
            queue_name="q",
            external_id=str(i),
            detail=detail,
        )
        for i, (cands, detail) in enumerate(model.candidates(proba, unlike=unlike))
    ]
    assert all(r.decision == "review" for r in routes)
    assert routes[0].reason.startswith("f") and "far outside" in routes[0].reason


def test_profile_psi_is_small_for_fresh_items_and_large_for_a_shift():
    payloads, labels = _demo_set()
    model = _fitted(payloads[:2000], labels[:2000])
    amount = model.profile["features"]["amount"]
    j = [c["name"] for c in model.columns].index("amount")
    from app.learning.profile import bucket_shares

    fresh = bucket_shares(amount, model.inputs(payloads[2000:])[:, j])
    shifted = bucket_shares(
        amount, model.inputs([{**p, "amount": p["amount"] * 100} for p in payloads[2000:]])[:, j]
    )
    assert psi(amount["shares"], fresh) < 0.05
    assert psi(amount["shares"], shifted) > 1
    assert psi([0.5, 0.5, 0.0], [0.5, 0.5, 0.0]) == 0


def test_route_reason_of_an_item_unlike_the_training_data():
    hits = [
        {"field": "amount", "check": "range", "reason": "amount 123,400 is far outside (12–4,100)"},
        {"field": "country", "check": "category", "reason": "country 'ZZ' is new"},
        {"field": None, "check": "novelty", "reason": "unlike"},
    ]
    route = route_item(
        policy=Policy(audit_rate=0, auto_accept_threshold=0.5),
        candidates=[{"label": "legit", "score": 0.99}],
        queue_name="q",
        external_id="x",
        detail={"coverage": 0.95, "set_size": 1, "drift": hits},
    )
    assert route.decision == "review"
    assert route.reason == (
        "amount 123,400 is far outside (12–4,100), and country 'ZZ' is new (and 1 more): "
        "a person must check"
    )
    long = [{"field": "x" * 600, "check": "range", "reason": "x" * 600}]
    reason = route_item(
        policy=Policy(),
        candidates=[{"label": "legit", "score": 0.99}],
        queue_name="q",
        external_id="x",
        detail={"coverage": 0.95, "set_size": 1, "drift": long},
    ).reason
    assert len(reason) == 500 and reason.endswith("...: a person must check")
