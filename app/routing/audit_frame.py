"""The audit frame: every item the model's answer would have been auto-accepted for, with
its confidence band (the stratum of app.trust.precision's estimate) and the chance that a
person answers it anyway."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# Lower edges of the confidence bands of the model's top score; a band runs to the next.
BAND_EDGES = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99)


def band_of(score: float) -> str:
    """The confidence band of a top score, as "0.95-0.98" (the last band ends at 1)."""
    lower = max((e for e in BAND_EDGES if score >= e), default=0.0)
    i = BAND_EDGES.index(lower)
    upper = BAND_EDGES[i + 1] if i + 1 < len(BAND_EDGES) else 1.0
    return f"{lower:.2f}-{upper:.2f}"


def frame_row(
    *,
    queue_id: int,
    item_id: int,
    candidates: Sequence[Mapping],
    model_version: str | None,
    audited: bool,
    paused: bool,
    audit_rate: float,
    now,
) -> dict:
    """The audit frame's row for an item auto-accept was eligible for: while paused every
    such item goes to a person (chance 1), else the audit draw sends it at the audit rate."""
    top = candidates[0]
    return {
        "queue_id": queue_id,
        "item_id": item_id,
        "model_version": model_version,
        "answer": top["label"],
        "score": float(top["score"]),
        "band": band_of(float(top["score"])),
        "sample_rate": 1.0 if paused else audit_rate,
        "to_person": paused or audited,
        "created_at": now,
    }
