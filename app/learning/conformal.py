"""Candidate sets with a chosen coverage: split conformal prediction (LAC score) by MAPIE.

MAPIE computes the conformity scores on held-out human labels; Loupe takes their quantile
exactly as MAPIE does (checked against MAPIE's own sets in the tests), adding held-out labels
the model has never seen as sure misses, and stores that one threshold with the model
version, so scoring needs neither MAPIE nor the calibration rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# MAPIE's tolerance when comparing a score with the threshold; the same here so that the
# stored threshold gives exactly MAPIE's sets.
from mapie._machine_precision import EPSILON
from mapie.classification import SplitConformalClassifier
from sklearn.base import BaseEstimator, ClassifierMixin


@dataclass(frozen=True)
class Conformal:
    coverage: float
    # An answer is in the set when 1 - p(answer) <= qhat (LAC). qhat 1.0: every answer.
    qhat: float
    n: int
    note: str | None = None

    def sets(self, proba: np.ndarray) -> np.ndarray:
        """Boolean matrix: answer j is in the set of row i."""
        return (1 - proba) - self.qhat <= EPSILON

    def as_dict(self) -> dict:
        return {
            "method": "split conformal, LAC score (MAPIE)",
            "coverage": self.coverage,
            "qhat": self.qhat,
            "n": self.n,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> Conformal | None:
        if not data or data.get("qhat") is None:
            return None
        return cls(float(data["coverage"]), float(data["qhat"]), int(data["n"]), data.get("note"))


class _Probabilities(ClassifierMixin, BaseEstimator):
    """A prefit "classifier" whose input is already the model's probabilities: MAPIE then
    works on exactly the scores Loupe serves, whatever input the pipeline itself takes."""

    def __init__(self, classes=None):
        self.classes = classes

    def fit(self, x, y=None):
        return self

    def __sklearn_is_fitted__(self):
        return True

    @property
    def classes_(self):
        return np.asarray(self.classes, dtype=object)

    @property
    def n_features_in_(self):
        return len(self.classes)

    def predict_proba(self, x):
        return np.asarray(x, dtype=float)

    def predict(self, x):
        return self.classes_[np.asarray(x, dtype=float).argmax(axis=1)]


def conformalize(model, x, y: list[str], *, coverage: float, n_unseen: int = 0) -> Conformal:
    """The threshold for `coverage` from held-out rows the model did not train on.

    Rows whose label the model has never seen cannot be in any set; with them, or with too
    few rows for the coverage asked, the set is every answer (honest, if unhelpful).
    """
    needed = math.ceil(max(1 / (1 - coverage), 1 / coverage))
    if len(y) < needed:
        return Conformal(
            coverage,
            1.0,
            len(y),
            f"{len(y)} held-out labels; {needed} are needed for {coverage:.0%} sets, "
            "so every answer is a candidate",
        )
    mapie = SplitConformalClassifier(
        estimator=_Probabilities([str(c) for c in model.classes_]),
        confidence_level=coverage,
        conformity_score="lac",
        prefit=True,
    )
    mapie.conformalize(model.predict_proba(x), np.asarray(y, dtype=object))
    scores = np.asarray(mapie.conformity_scores).ravel()
    # Unseen labels are never covered: count them as the worst possible scores.
    scores = np.concatenate([scores, np.ones(n_unseen)])
    n = len(scores)
    level = math.ceil((n + 1) * coverage) / n
    if level > 1:
        return Conformal(coverage, 1.0, n, "too few held-out labels; every answer is a candidate")
    qhat = float(np.quantile(scores, level, method="lower"))
    note = f"{n_unseen} held-out labels the model never saw" if n_unseen else None
    return Conformal(coverage, qhat, n, note)
