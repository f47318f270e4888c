"""How far reviewers agree beyond chance: Krippendorff's alpha per queue and Cohen's kappa
per pair of reviewers, over the items several reviewers answered in a window.

Each figure comes with a 95% bootstrap interval (items resampled with a fixed seed, so the
same data gives the same interval) and the number of items behind it; below MIN_ITEMS
items a figure is not given, and the answer says so instead.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from datetime import timedelta
from itertools import combinations

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import select
from sqlmodel import Session, col

from app.models import Item, Queue, Review, User, utcnow
from app.states import ItemStatus

MIN_ITEMS = 10
RESAMPLES = 1000
SEED = 20261201
MAX_DAYS = 3650


def _too_few(n: int) -> str:
    return f"too few items: {n}, at least {MIN_ITEMS} are needed for a figure"


def _figure(estimate: float | None, replicates: list[float], n: int, method: str) -> dict:
    """{"estimate", "lower", "upper", "n", "method", "note"}; figures None when undefined."""
    if n < MIN_ITEMS:
        return {
            "estimate": None,
            "lower": None,
            "upper": None,
            "n": n,
            "method": method,
            "note": _too_few(n),
        }
    if estimate is None or not np.isfinite(estimate):
        return {
            "estimate": None,
            "lower": None,
            "upper": None,
            "n": n,
            "method": method,
            "note": "undefined: every answer was the same, so agreement beyond chance is not "
            "measurable",
        }
    finite = np.asarray([r for r in replicates if np.isfinite(r)])
    lower, upper = (
        (float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5)))
        if finite.size
        else (None, None)
    )
    return {
        "estimate": round(float(estimate), 4),
        "lower": None if lower is None else round(lower, 4),
        "upper": None if upper is None else round(upper, 4),
        "n": n,
        "method": method,
        "note": None,
    }


def _alpha(matrix: np.ndarray) -> float:
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(
                krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
            )
    except ValueError:  # one value in the whole domain: alpha is undefined
        return float("nan")


def _kappa(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Cohen's kappa of each row pair of a and b (resamples × items, codes 0..k-1), at once:
    the replicates of the bootstrap (cohen_kappa_score gives the estimate itself)."""
    n = a.shape[1]
    counts = np.zeros((a.shape[0], k * k))
    codes = a * k + b
    for row in range(a.shape[0]):
        counts[row] = np.bincount(codes[row], minlength=k * k)
    confusion = counts.reshape(-1, k, k) / n
    observed = np.trace(confusion, axis1=1, axis2=2)
    expected = np.einsum("ri,ri->r", confusion.sum(axis=2), confusion.sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (observed - expected) / (1 - expected)


def _answers(session: Session, queue: Queue, since) -> dict[int, dict[str, str]]:
    """{item id: {reviewer: answer}} for items reviewed in the window by two or more people
    (gold items are tests, not data: left out)."""
    rows = session.execute(
        select(col(Review.item_id), col(User.name), col(Review.label))
        .join(Item, col(Item.id) == col(Review.item_id))
        .join(User, col(User.id) == col(Review.user_id))
        .where(
            col(Item.queue_id) == queue.id,
            col(Item.status) != ItemStatus.GOLD,
            col(Review.created_at) >= since,
        )
        .order_by(col(Review.id))
    )
    answers: dict[int, dict[str, str]] = defaultdict(dict)
    for item_id, name, label in rows:
        answers[item_id][name] = label  # a reviewer's last answer counts
    return {i: a for i, a in answers.items() if len(a) >= 2}


def agreement_report(*, session: Session, queue: Queue, days: int = 30, now=None) -> dict:
    """Krippendorff's alpha (nominal) over the queue's multi-review items of the last `days`
    days, and Cohen's kappa for every pair of reviewers who answered common items."""
    now = now or utcnow()
    since = now - timedelta(days=days)
    answers = _answers(session, queue, since)
    reviewers = sorted({r for a in answers.values() for r in a})
    labels = sorted({label for a in answers.values() for label in a.values()})
    code = {label: i for i, label in enumerate(labels)}
    items = sorted(answers)
    rng = np.random.default_rng(SEED)

    matrix = np.full((len(reviewers), len(items)), np.nan)
    for j, item_id in enumerate(items):
        for i, reviewer in enumerate(reviewers):
            if reviewer in answers[item_id]:
                matrix[i, j] = code[answers[item_id][reviewer]]
    alpha_replicates: list[float] = []
    alpha = None
    if len(items) >= MIN_ITEMS:
        alpha = _alpha(matrix)
        if np.isfinite(alpha):
            draws = rng.integers(0, len(items), size=(RESAMPLES, len(items)))
            alpha_replicates = [_alpha(matrix[:, d]) for d in draws]

    pairs = []
    for a, b in combinations(reviewers, 2):
        shared = [i for i in items if a in answers[i] and b in answers[i]]
        if not shared:
            continue
        la = np.array([code[answers[i][a]] for i in shared])
        lb = np.array([code[answers[i][b]] for i in shared])
        kappa = None
        replicates: list[float] = []
        if len(shared) >= MIN_ITEMS:
            with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)
                kappa = float(cohen_kappa_score(la, lb))
            if np.isfinite(kappa):
                draws = rng.integers(0, len(shared), size=(RESAMPLES, len(shared)))
                replicates = list(_kappa(la[draws], lb[draws], len(labels)))
        pairs.append(
            {
                "reviewers": [a, b],
                "kappa": _figure(kappa, replicates, len(shared), "cohen_kappa"),
            }
        )
    return {
        "queue": queue.name,
        "days": days,
        "since": since.isoformat(),
        "min_items": MIN_ITEMS,
        "items": len(items),
        "reviewers": reviewers,
        "alpha": _figure(alpha, alpha_replicates, len(items), "krippendorff_alpha_nominal"),
        "pairs": pairs,
    }
