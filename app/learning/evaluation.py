"""Grading a model on held-out human labels, and against the queue's active model."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from app.learning.conformal import Conformal
from app.learning.intervals import coverage_interval
from app.learning.scoring import LoadedModel
from app.learning.snapshot import Row

# Fewer held-out rows than this that the active model never saw: grade both on all of them.
MIN_FAIR_EVAL = 10


def expected_calibration_error(correct: np.ndarray, confidence: np.ndarray, bins: int = 10):
    """Top-label ECE: how far, on average, stated confidence is from observed accuracy."""
    if len(correct) == 0:
        return None
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return round(float(error), 4)


def evaluate(model, x, targets: list[str], conformal: Conformal | None = None) -> dict:
    """Overall and per-class metrics, calibration error and, given a conformal threshold,
    the measured coverage of the candidate sets, on held-out rows."""
    proba = model.predict_proba(x)
    classes = np.asarray([str(c) for c in model.classes_])
    predicted = classes[proba.argmax(axis=1)]
    y = np.asarray(targets, dtype=object)
    labels = sorted(set(classes) | set(targets))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, predicted, labels=labels, zero_division=0
    )
    out = {
        "accuracy": round(float(accuracy_score(y, predicted)), 4),
        "macro_f1": round(float(f1_score(y, predicted, average="macro", zero_division=0)), 4),
        "weighted_f1": round(float(f1_score(y, predicted, average="weighted", zero_division=0)), 4),
        "n_eval": len(targets),
        "per_class": {
            lab: {
                "precision": round(float(p), 4),
                "recall": round(float(r), 4),
                "f1": round(float(f), 4),
                "support": int(s),
            }
            for lab, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        "confusion": {
            "labels": labels,
            "matrix": confusion_matrix(y, predicted, labels=labels).tolist(),
        },
        "calibration_error": expected_calibration_error(
            (predicted == y).astype(float), proba.max(axis=1)
        ),
    }
    if conformal is not None:
        out.update(set_coverage(conformal, proba, list(classes), targets))
    return out


def set_coverage(conformal: Conformal, proba, classes: list[str], targets: list[str]) -> dict:
    """How often the sets as reviewers see them (never empty, with the answers the model
    never saw) held the right answer: overall with its interval, and per answer."""
    sets, empty = conformal.shown_sets(proba, classes)
    index = {c: i for i, c in enumerate(classes)}
    # An answer the model never saw is always offered, so it is always in the list.
    covered = [t not in index or bool(sets[n, index[t]]) for n, t in enumerate(targets)]
    sizes = sets.sum(axis=1)
    measured = coverage_interval(sum(covered), len(covered))
    per_answer = {}
    for answer in sorted(set(targets)):
        hits = [c for c, t in zip(covered, targets, strict=True) if t == answer]
        per_answer[answer] = coverage_interval(sum(hits), len(hits))
    return {
        "coverage": measured["measured"],
        "coverage_lower": measured["lower"],
        "coverage_upper": measured["upper"],
        "coverage_target": conformal.coverage,
        "coverage_mode": conformal.mode,
        "coverage_per_answer": per_answer,
        "mean_set_size": round(float(sizes.mean()), 3) if len(sizes) else None,
        "single_answer_share": round(float((sizes == 1).mean()), 4) if len(sizes) else None,
        "empty_set_share": round(float(empty.mean()), 4) if len(empty) else None,
    }


@dataclass(frozen=True)
class Active:
    """The active version a new one must beat: its id, and the model with the ids of the
    examples it trained on when it could be loaded (else why not); the answers its split
    model gave on its own held-out labels (example id -> answer), how many labels it was
    trained on and the settings it was trained with."""

    version_id: int
    loaded: LoadedModel | None
    trained_on: frozenset[int] | None
    error: str | None = None
    held_out: dict[int, str] = field(default_factory=dict)
    n_labels: int = 0
    settings_hash: str | None = None


# Fewer comparable held-out rows than this: no paired test, the candidate waits.
MIN_PAIRED = MIN_FAIR_EVAL
# "Not worse": the lower end of the difference's interval above minus this many points.
NON_INFERIORITY = 0.01
# Two-sided 90% percentile interval: each end is a one-sided 95% bound.
GATE_CONFIDENCE = 0.9
BOOTSTRAP_RESAMPLES = 2000


def _f1_per_class(pred: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """F1 of class k along the last axis (NaN where the class is in neither y nor pred)."""
    tp = ((pred == k) & (y == k)).sum(axis=-1)
    fp = ((pred == k) & (y != k)).sum(axis=-1)
    fn = ((pred != k) & (y == k)).sum(axis=-1)
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)


def metric_value(metric: str, pred: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """The metric on label indices, vectorised along the last axis (one value per resample):
    as sklearn computes it (macro F1 over the answers present in y or pred)."""
    if metric == "accuracy":
        return (pred == y).mean(axis=-1)
    per = np.stack([_f1_per_class(pred, y, k) for k in range(n_classes)])
    if metric == "macro_f1":
        present = ~np.isnan(per)
        return np.where(present, per, 0).sum(axis=0) / np.maximum(present.sum(axis=0), 1)
    support = np.stack([(y == k).sum(axis=-1) for k in range(n_classes)])
    return (np.nan_to_num(per) * support).sum(axis=0) / y.shape[-1]


def paired_difference(
    metric: str, ours: list[str], theirs: list[str], truth: list[str], seed: int = 0
) -> dict:
    """The metric's difference (new - active) on the same rows, with a paired bootstrap
    percentile interval (scipy.stats.bootstrap, rows resampled together)."""
    labels = sorted(set(ours) | set(theirs) | set(truth))
    index = {lab: i for i, lab in enumerate(labels)}
    a = np.asarray([index[v] for v in ours])
    b = np.asarray([index[v] for v in theirs])
    y = np.asarray([index[v] for v in truth])
    k = len(labels)

    def difference(a_, b_, y_, axis=-1):
        return metric_value(metric, a_, y_, k) - metric_value(metric, b_, y_, k)

    point = float(difference(a, b, y))
    if np.array_equal(a, b):  # the same answers: the difference is exactly zero
        low = high = 0.0
    else:
        result = stats.bootstrap(
            (a, b, y),
            difference,
            paired=True,
            vectorized=True,
            n_resamples=BOOTSTRAP_RESAMPLES,
            confidence_level=GATE_CONFIDENCE,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return {
        "new": round(float(metric_value(metric, a, y, k)), 4),
        "active": round(float(metric_value(metric, b, y, k)), 4),
        "difference": round(point, 4),
        "low": round(low, 4),
        "high": round(high, 4),
        "n": len(truth),
        "confidence": GATE_CONFIDENCE,
        "method": "paired bootstrap, percentile interval (scipy.stats.bootstrap)",
    }


def compare_with_active(
    metrics: dict,
    answers: dict[int, str],
    active: Active | None,
    rows: list[Row],
    eval_idx: list[int],
    metric: str,
    *,
    n_labels: int,
    settings_hash: str,
) -> None:
    """Decides whether the new version is promoted over the active one, from a paired test
    on the same held-out labels neither model trained on; writes `promoted`,
    `promotion_reason` and the comparison's figures into `metrics`.

    `answers` are the new split model's answers on the evaluation rows (by example id).
    The active model answers live for rows it never saw, and through its own split model's
    stored answers for rows that were in its held-out part; rows it trained on are left out.
    Promoted when better with confidence, or not worse with confidence and trained on more
    labels or with the queue's newer settings.
    """
    metrics["compared_with_version_id"] = active.version_id if active else None
    if active is None:
        return  # the first model: fitting decides (enough labels per answer)
    if active.loaded is None:
        metrics["promoted"] = True
        metrics["promotion_reason"] = f"the active model cannot be loaded ({active.error})"
        return
    seen = active.trained_on
    # Its training rows unknown (a version older than stored snapshots): graded live on
    # every held-out row, which can only favour it.
    live = [i for i in eval_idx if seen is None or rows[i].example_id not in seen]
    stored = [
        i
        for i in eval_idx
        if seen is not None and rows[i].example_id in seen and rows[i].example_id in active.held_out
    ]
    theirs_by_row: dict[int, str] = {i: active.held_out[rows[i].example_id] for i in stored}
    try:
        if live:
            proba = active.loaded.predict_proba([rows[i].payload for i in live])
            classes = active.loaded.classes
            for i, p in zip(live, proba, strict=True):
                theirs_by_row[i] = classes[int(np.argmax(p))]
    except Exception as exc:  # noqa: BLE001 - a broken active model must not block a working one
        metrics["promoted"] = True
        metrics["promotion_reason"] = f"the active model could not be evaluated ({exc})"
        return
    same = sorted(theirs_by_row)
    metrics["active_version"] = active.loaded.version
    metrics["compared_on"] = len(same)
    name = metric.replace("_", " ")
    if len(same) < MIN_PAIRED:
        metrics["promoted"] = False
        metrics["promotion_reason"] = (
            f"only {len(same)} held-out labels that neither this model nor "
            f"{active.loaded.version} trained on (at least {MIN_PAIRED} are needed to compare "
            "them): kept as a candidate"
        )
        return
    test = paired_difference(
        metric,
        [answers[rows[i].example_id] for i in same],
        [theirs_by_row[i] for i in same],
        [rows[i].target for i in same],
    )
    metrics["gate"] = test
    metrics[f"active_{metric}"] = test["active"]
    metrics[f"new_{metric}_on_same_rows"] = test["new"]
    better = test["low"] > 0
    not_worse = test["low"] >= -NON_INFERIORITY
    more_labels = n_labels > active.n_labels
    new_settings = active.settings_hash is not None and settings_hash != active.settings_hash
    figures = (
        f"{name} {test['new']:.3f} vs {test['active']:.3f} for {active.loaded.version} on the "
        f"same {len(same)} held-out labels neither trained on (difference "
        f"{test['difference']:+.3f}, {GATE_CONFIDENCE:.0%} interval {test['low']:+.3f} to "
        f"{test['high']:+.3f})"
    )
    if better:
        verdict, promoted = "better with confidence, promoted", True
    elif not_worse and more_labels:
        verdict = (
            f"not worse with confidence and trained on more labels ({n_labels} vs "
            f"{active.n_labels}), promoted"
        )
        promoted = True
    elif not_worse and new_settings:
        verdict = "not worse with confidence and trained with the queue's new settings, promoted"
        promoted = True
    elif test["high"] < 0:
        verdict, promoted = "worse with confidence, kept as a candidate", False
    elif not_worse:
        verdict = (
            "not better with confidence, and neither more labels nor new settings: "
            "kept as a candidate"
        )
        promoted = False
    else:
        verdict = "not better with confidence and possibly worse, kept as a candidate"
        promoted = False
    metrics["promoted"] = promoted
    metrics["promotion_reason"] = f"{figures}: {verdict}"
