"""The audit frame: every item the model's answer would have been auto-accepted for, with
its confidence band (the stratum of app.trust.precision's estimate) and the chance that a
person answers it anyway."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from app.queues.bands import band_of
from app.queues.service import Policy


def frame_row(
    *,
    queue_id: int,
    item_id: int,
    candidates: Sequence[Mapping],
    model_version: str | None,
    audited: bool,
    paused: bool,
    policy: Policy,
    now,
) -> dict:
    """The audit frame's row for an item auto-accept was eligible for: while paused every
    such item goes to a person (chance 1), else the audit draw sends it at its band's audit
    rate."""
    top = candidates[0]
    return {
        "queue_id": queue_id,
        "item_id": item_id,
        "model_version": model_version,
        "answer": top["label"],
        "score": float(top["score"]),
        "band": band_of(float(top["score"])),
        "sample_rate": 1.0 if paused else policy.audit_rate_for(float(top["score"])),
        "to_person": paused or audited,
        "created_at": now,
    }
