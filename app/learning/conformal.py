"""Candidate sets with a chosen coverage: split conformal prediction (LAC score) by MAPIE,
per answer (Mondrian, class-conditional) when every answer has enough held-out labels,
over all answers otherwise.

What is guaranteed, when the held-out labels and the future items are exchangeable (drawn
alike, in any order; a drifting stream breaks it):
- "per_answer": for every answer the model knows, the set holds that answer at least
  `coverage` of the time among items whose right answer it is. The held-out labels are
  split by answer and MAPIE sets each answer's own threshold from that answer's labels
  only (a Mondrian conformal classifier whose category is the candidate answer).
- "overall": the set holds the right answer at least `coverage` of the time on average
  over all items; a rare answer can be covered less often. Used when some answer has
  fewer held-out labels than MAPIE needs for its own threshold (`needed_labels`).
- "every_answer": too few held-out labels even for one threshold: every answer is a
  candidate (honest, if unhelpful).

Answers the model never saw cannot get a probability; scoring always offers them as
candidates (see scoring.LoadedModel.candidates), so held-out labels of such answers are
covered by construction and take no part in the thresholds. Each threshold is stored with
the model version, so scoring needs neither MAPIE nor the calibration rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from mapie.classification import SplitConformalClassifier
from mapie.conformity_scores import LACConformityScore
from sklearn.base import BaseEstimator, ClassifierMixin

# A score equal to the threshold up to floating-point noise is in the set: MAPIE compares
# with the same tolerance (1e-8), so the stored thresholds give exactly MAPIE's sets.
TOLERANCE = 1e-8
PER_ANSWER, OVERALL, EVERY_ANSWER = "per_answer", "overall", "every_answer"
GUARANTEES = {
    PER_ANSWER: "for each answer, the list holds it {pct} of the time when it is right",
    OVERALL: "on average over all items, the list holds the right answer {pct} of the time",
    EVERY_ANSWER: "too few held-out labels for a threshold: every answer is a candidate",
}


@dataclass(frozen=True)
class Conformal:
    coverage: float
    # An answer is in the set when 1 - p(answer) <= its threshold (LAC); 1.0: every answer.
    qhat: float
    n: int
    note: str | None = None
    mode: str = OVERALL
    # PER_ANSWER: each answer's own threshold.
    per_answer: dict[str, float] = field(default_factory=dict)
    # Held-out labels per answer the thresholds were set on.
    counts: dict[str, int] = field(default_factory=dict)

    def thresholds(self, classes: list[str]) -> np.ndarray:
        """One threshold per column of predict_proba."""
        return np.asarray([self.per_answer.get(c, self.qhat) for c in classes], dtype=float)

    def sets(self, proba: np.ndarray, classes: list[str]) -> np.ndarray:
        """Boolean matrix: answer j is in the conformal set of row i (possibly empty)."""
        return (1 - np.asarray(proba, dtype=float)) - self.thresholds(classes) <= TOLERANCE

    def shown_sets(self, proba: np.ndarray, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The sets as reviewers see them, and which rows were empty: an empty set shows
        the model's best guess instead (adding an answer can only raise coverage)."""
        sets = self.sets(proba, classes)
        empty = ~sets.any(axis=1)
        sets[empty, np.asarray(proba)[empty].argmax(axis=1)] = True
        return sets, np.asarray(empty, dtype=bool)

    @property
    def guarantee(self) -> str:
        return GUARANTEES[self.mode].format(pct=f"{self.coverage:.0%}")

    def as_dict(self) -> dict:
        return {
            "method": "split conformal, LAC score (MAPIE)"
            + (", per answer (Mondrian)" if self.mode == PER_ANSWER else ""),
            "mode": self.mode,
            "guarantee": self.guarantee,
            "coverage": self.coverage,
            "qhat": self.qhat,
            "per_answer": self.per_answer,
            "counts": self.counts,
            "needed_per_answer": needed_labels(self.coverage),
            "n": self.n,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> Conformal | None:
        if not data or data.get("qhat") is None:
            return None
        return cls(
            float(data["coverage"]),
            float(data["qhat"]),
            int(data["n"]),
            data.get("note"),
            # Versions stored before per-answer thresholds had one, over all answers.
            data.get("mode") or (EVERY_ANSWER if float(data["qhat"]) >= 1 else OVERALL),
            {str(k): float(v) for k, v in (data.get("per_answer") or {}).items()},
            {str(k): int(v) for k, v in (data.get("counts") or {}).items()},
        )


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


def _threshold(scores: np.ndarray, coverage: float) -> float | None:
    """MAPIE's LAC threshold of these conformity scores, or None when there are too few."""
    if len(scores) == 0:
        return None
    try:
        q = LACConformityScore().get_conformity_score_quantiles(
            np.asarray(scores, dtype=float), np.asarray([1 - coverage]), "prefit"
        )
    except ValueError:  # MAPIE's quantile level is past 1: too few scores
        return None
    return float(np.ravel(q)[0])


def needed_labels(coverage: float) -> int:
    """The fewest held-out labels for which MAPIE gives a threshold at this coverage
    (19 at 95%, 9 at 90%): per answer for per-answer sets, in all for overall ones."""
    n = 1
    while _threshold(np.zeros(n), coverage) is None:
        n += 1
    return n


def conformalize(model, x, y: list[str], *, coverage: float, n_unseen: int = 0) -> Conformal:
    """The thresholds for `coverage` from held-out rows the model did not train on (rows
    whose answer the model knows; `n_unseen` more had answers it never saw, which scoring
    always offers)."""
    classes = [str(c) for c in model.classes_]
    y = [str(v) for v in y]
    counts = {c: y.count(c) for c in classes}
    needed = needed_labels(coverage)
    unseen_note = f"{n_unseen} held-out labels of answers the model never saw" if n_unseen else None
    if len(y) < needed:
        return Conformal(
            coverage,
            1.0,
            len(y),
            f"{len(y)} held-out labels; {needed} are needed for {coverage:.0%} sets, "
            "so every answer is a candidate",
            EVERY_ANSWER,
            counts=counts,
        )
    mapie = SplitConformalClassifier(
        estimator=_Probabilities(classes),
        confidence_level=coverage,
        conformity_score="lac",
        prefit=True,
    )
    mapie.conformalize(model.predict_proba(x), np.asarray(y, dtype=object))
    scores = np.asarray(mapie.conformity_scores, dtype=float).ravel()
    qhat = _threshold(scores, coverage)
    if qhat is None:  # len(y) >= needed makes this unreachable; every answer, to be safe
        return Conformal(coverage, 1.0, len(y), unseen_note, EVERY_ANSWER, counts=counts)
    lacking = sorted((n, c) for c, n in counts.items() if n < needed)
    if not lacking:
        labels = np.asarray(y, dtype=object)
        per_answer = {c: _threshold(scores[labels == c], coverage) for c in classes}
        if all(t is not None for t in per_answer.values()):
            thresholds = {c: float(t) for c, t in per_answer.items() if t is not None}
            return Conformal(
                coverage, qhat, len(y), unseen_note, PER_ANSWER, thresholds, counts=counts
            )
        lacking = [(counts[c], c) for c, t in per_answer.items() if t is None]
    n_low, answer = lacking[0]
    why = (
        f"answer {answer!r} has {n_low} held-out labels, {needed} are needed for a per-answer "
        f"{coverage:.0%} threshold: one threshold over all answers"
    )
    note = "; ".join(filter(None, [why, unseen_note]))
    return Conformal(coverage, qhat, len(y), note, OVERALL, counts=counts)
