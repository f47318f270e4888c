"""Confidence intervals for measured proportions (statsmodels), shared by the model card's
held-out figures and the quality report's figures on recent labels."""

from __future__ import annotations

from statsmodels.stats.proportion import proportion_confint

# Two-sided 95% Wilson interval: its lower end is also a one-sided 97.5% lower bound.
INTERVAL_ALPHA = 0.05
INTERVAL_METHOD = "wilson"


def coverage_interval(hits: int, n: int) -> dict:
    """{"measured", "lower", "upper", "n"} for `hits` out of `n`; None figures when n is 0."""
    if n == 0:
        return {"measured": None, "lower": None, "upper": None, "n": 0}
    lower, upper = proportion_confint(hits, n, alpha=INTERVAL_ALPHA, method=INTERVAL_METHOD)
    return {
        "measured": round(hits / n, 4),
        "lower": round(float(lower), 4),
        "upper": round(float(upper), 4),
        "n": n,
    }
