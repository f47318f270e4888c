"""Auto-accept by target precision: the threshold on the calibrated top score chosen by
Learn-Then-Test (MAPIE's BinaryClassificationController) on held-out human labels.

The rule is "auto-accept the model's top answer when its calibrated score is at least λ".
Each held-out row is one trial: positive when the rule would accept it, a success when the
top answer is the person's. MAPIE tests, for every λ on a fixed grid, whether precision on
accepted rows is at least the target, with a Hoeffding-Bentkus p-value and a family-wise
error correction, so that the chosen λ keeps precision >= target with probability
>= confidence over the draw of held-out labels (for a model that did not train on them).
Among the λ that pass, it takes the one accepting most rows.

Why the top score alone and not "a single-answer candidate set, and a score": the set's
threshold is itself chosen on held-out rows, so a rule depending on it would need rows of its
own to stay valid; precision is a property of the accepted answers and the guarantee covers
them whatever the set holds (the set still shows a reviewer the plausible answers).
"""

from __future__ import annotations

import warnings

import numpy as np
from mapie.risk_control import BinaryClassificationController

# Thresholds tested (fixed before seeing any data, as Learn-Then-Test requires). Each one
# costs power under Holm's correction: on load_digits 40 accepted 87% of items at a 97%
# target where 140 accepted 74%, both holding the target in at least 28 of 30 draws.
GRID = np.round(np.linspace(0.30, 0.99, 40), 4)
# Targets the trade-off curve reports, besides the queue's own.
CURVE_TARGETS = (0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995)
# Below this many held-out rows no rule is tried: the guarantee could not be met anyway.
MIN_ROWS = 20


def _as_proba(x: np.ndarray) -> np.ndarray:
    """MAPIE's binary interface: column 1 is the score the threshold applies to."""
    top = np.asarray(x, dtype=float).reshape(-1)
    return np.column_stack([1 - top, top])


def control_precision(
    top: np.ndarray, correct: np.ndarray, *, target: float, confidence: float
) -> float | None:
    """The smallest tested threshold (the largest share accepted) that Learn-Then-Test
    certifies for `target` precision at `confidence`; None when none is certified."""
    controller = BinaryClassificationController(
        predict_function=_as_proba,
        risk="precision",
        target_level=float(target),
        confidence_level=float(confidence),
        list_predict_params=GRID,
        # Holm over the grid: valid whatever the shape of precision against the threshold;
        # fixed-sequence testing stops at the highest thresholds, where few rows remain
        # (it accepted nothing at all on load_digits).
        fwer_method="bonferroni_holm",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MAPIE warns when no threshold controls the risk
        controller.calibrate(np.asarray(top, dtype=float).reshape(-1, 1), correct.astype(int))
    if controller.best_predict_param is None:
        return None
    return float(controller.best_predict_param)


def choose_rule(
    top: np.ndarray, correct: np.ndarray, *, target_precision: float | None, confidence: float
) -> dict:
    """metrics["auto_accept"]: the threshold for the queue's target (None and why_none when
    no rule reaches it), the share of held-out rows it accepts, and the trade-off curve.

    `top` is the calibrated top score of each held-out row, `correct` whether that top answer
    was the person's label.
    """
    top = np.asarray(top, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    n = len(top)
    out: dict = {
        "method": "Learn-Then-Test, Hoeffding-Bentkus p-values, Bonferroni-Holm (MAPIE)",
        "rule": "calibrated top score >= threshold",
        "target_precision": target_precision,
        "confidence": confidence,
        "n": n,
        "threshold": None,
        "expected_share": 0.0,
        "curve": [],
        "why_none": None,
    }
    if n < MIN_ROWS:
        out["why_none"] = (
            f"only {n} held-out human labels; at least {MIN_ROWS} are needed to choose "
            "an auto-accept rule"
        )
        return out
    targets = sorted({*CURVE_TARGETS, *([target_precision] if target_precision else [])})
    for t in targets:
        threshold = control_precision(top, correct, target=t, confidence=confidence)
        share = float((top >= threshold).mean()) if threshold is not None else 0.0
        out["curve"].append(
            {
                "target_precision": t,
                "threshold": threshold,
                "share": round(share, 4),
                "to_people": round(1 - share, 4),
            }
        )
        if t == target_precision and threshold is not None:
            accepted = top >= threshold
            out["threshold"] = threshold
            out["expected_share"] = round(share, 4)
            out["held_out_precision"] = round(float(correct[accepted].mean()), 4)
    if target_precision is None:
        out["why_none"] = "the queue sets no target precision"
    elif out["threshold"] is None:
        best = float(correct.mean())
        out["why_none"] = (
            f"no threshold reaches {target_precision:.1%} precision with {confidence:.0%} "
            f"confidence on the {n} held-out labels (the top answer was right "
            f"{best:.1%} of the time overall)"
        )
    return out
