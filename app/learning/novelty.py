"""The novelty detector: is an item, as a whole, unlike the items the model learned from?

An IsolationForest is fitted on the training rows as the model's own pipeline transforms
them (scaled numbers, one-hot categories, TF-IDF words), and its score is turned into a
conformal p-value against held-out rows the forest did not see: an item is flagged when its
p-value is at most ALPHA. For items from the same distribution as those held-out rows this
flags at most ALPHA of them (the conformal guarantee); items unlike them score lower than
nearly every held-out row and are flagged. With fewer than 1/ALPHA - 1 held-out rows no p-value
can be that small, and nothing is flagged (the card says so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.sparse import issparse
from sklearn.ensemble import IsolationForest

from app.learning.pipeline import base_pipeline

# The share of ordinary items the detector may send to a person.
ALPHA = 0.01
TREES = 100


def features_step(model):
    """The fitted ColumnTransformer of the model's pipeline (None for other estimators)."""
    pipe = base_pipeline(model)
    return None if pipe is None else pipe.named_steps["features"]


@dataclass(frozen=True)
class Novelty:
    """A fitted detector and its threshold: a score below it flags the item."""

    forest: IsolationForest
    threshold: float | None

    def flags(self, transformed) -> np.ndarray:
        """True per row whose score is below the threshold."""
        if self.threshold is None:
            return np.zeros(transformed.shape[0], dtype=bool)
        return self.forest.score_samples(_dense_when_narrow(transformed)) < self.threshold


# The forest walks dense rows faster than sparse ones; wide TF-IDF rows stay sparse.
DENSE_UP_TO = 512


def _dense_when_narrow(transformed):
    if issparse(transformed) and transformed.shape[1] <= DENSE_UP_TO:
        return transformed.toarray()
    return transformed


def fit_novelty(model, x_train, x_held_out, *, seed: int) -> tuple[Novelty | None, dict]:
    """(detector, what the card says about it), fitted on the transformed training rows,
    its threshold set on the held-out rows."""
    step = features_step(model)
    if step is None:
        return None, {"method": None, "why": "the model has no feature pipeline"}
    if len(x_train) < 2:
        return None, {"method": None, "why": "too few training rows"}
    forest = IsolationForest(n_estimators=TREES, random_state=seed)
    forest.fit(step.transform(x_train))
    n = len(x_held_out)
    # The k-th smallest held-out score: an item scoring below it has p-value
    # (1 + #{held-out scores <= its score}) / (n + 1) <= k / (n + 1) <= ALPHA.
    k = math.floor(ALPHA * (n + 1))
    card = {
        "method": "isolation forest on the pipeline's features, conformal p-value",
        "alpha": ALPHA,
        "trees": TREES,
        "n_train": len(x_train),
        "n_held_out": n,
    }
    if k < 1:
        card["threshold"] = None
        card["why"] = (
            f"{n} held-out rows: at least {math.ceil(1 / ALPHA) - 1} are needed to flag "
            f"only {ALPHA:.0%} of ordinary items, so nothing is flagged as novel"
        )
        return Novelty(forest, None), card
    scores = np.sort(forest.score_samples(_dense_when_narrow(step.transform(x_held_out))))
    threshold = float(scores[k - 1])
    card["threshold"] = threshold
    return Novelty(forest, threshold), card
