"""Confidence bands of the model's top score: the strata of the audit sample and of the
audited precision estimate (app.trust.precision), and the keys of a queue's per-band audit
rates (Policy.audit_rate_by_band)."""

from __future__ import annotations

# Lower edges of the bands; a band runs to the next edge (the last to 1).
BAND_EDGES = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99)


def _name(i: int) -> str:
    upper = BAND_EDGES[i + 1] if i + 1 < len(BAND_EDGES) else 1.0
    return f"{BAND_EDGES[i]:.2f}-{upper:.2f}"


BANDS = tuple(_name(i) for i in range(len(BAND_EDGES)))


def band_of(score: float) -> str:
    """The confidence band of a top score, as "0.95-0.98" (the last band ends at 1)."""
    lower = max((e for e in BAND_EDGES if score >= e), default=0.0)
    return _name(BAND_EDGES.index(lower))
