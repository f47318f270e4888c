"""Grading a model on held-out human labels, and against the queue's active model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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
    examples it trained on when it could be loaded (else why not)."""

    version_id: int
    loaded: LoadedModel | None
    trained_on: frozenset[int] | None
    error: str | None = None


def compare_with_active(
    metrics: dict,
    model,
    x_all,
    active: Active | None,
    rows: list[Row],
    eval_idx: list[int],
    metric: str,
) -> None:
    """Grades the active model on the held-out rows it never trained on, and decides whether
    the new one is promoted: writes `promoted`, `promotion_reason` and the comparison's
    figures into `metrics`."""
    metrics["compared_with_version_id"] = active.version_id if active else None
    if active is None:
        metrics["promoted"], metrics["promotion_reason"] = True, "first model of the queue"
        return
    if active.loaded is None:
        metrics["promoted"] = True
        metrics["promotion_reason"] = f"the active model cannot be loaded ({active.error})"
        return
    seen = active.trained_on
    fair = [i for i in eval_idx if rows[i].example_id not in seen] if seen is not None else []
    note = ""
    if len(fair) < MIN_FAIR_EVAL:
        fair = list(eval_idx)
        note = (
            " (the active model had trained on some of them: too few new labels)"
            if seen is not None
            else " (the active model's training rows are not known)"
        )
    try:
        theirs = evaluate(
            active.loaded.model,
            active.loaded.inputs([rows[i].payload for i in fair]),
            [rows[i].target for i in fair],
        )
    except Exception as exc:  # noqa: BLE001 - a broken active model must not block a working one
        metrics["promoted"] = True
        metrics["promotion_reason"] = f"the active model could not be evaluated ({exc})"
        return
    ours = (
        metrics[metric]
        if len(fair) == len(eval_idx)
        else evaluate(model, x_all[fair], [rows[i].target for i in fair])[metric]
    )
    metrics["active_version"] = active.loaded.version
    metrics[f"active_{metric}"] = theirs[metric]
    metrics[f"new_{metric}_on_same_rows"] = ours
    metrics["compared_on"] = len(fair)
    better = ours > theirs[metric]
    metrics["promoted"] = better
    name = metric.replace("_", " ")
    metrics["promotion_reason"] = (
        f"{name} {ours:.3f} vs {theirs[metric]:.3f} for {active.loaded.version} on the same "
        f"{len(fair)} newest human labels{note}: "
        + ("better, promoted" if better else "not better, kept as a candidate")
    )
