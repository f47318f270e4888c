"""Where an item goes once it has its candidates, and the rows that record it: one path for
items as they arrive (app.ingest.service) and for waiting items a newer model has re-scored
(app.learning.rescoring)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from app.queues.service import Policy
from app.routing.audit_frame import frame_row
from app.routing.decision import Route, hold_when_paused, route_item
from app.states import ItemStatus, LabelSource, RouteDecision

STATUS_FOR_ROUTE = {
    RouteDecision.REVIEW: ItemStatus.PENDING,
    RouteDecision.AUDIT: ItemStatus.PENDING,
    RouteDecision.AUTO_ACCEPT: ItemStatus.AUTO_ACCEPTED,
}

# Notes added to a waiting item's route reason when a newer model re-scores it: the reason
# it first came to a person stays first.
RESCORED_NOTE = "re-scored by a newer model while waiting for review"
REROUTED_NOTE = "re-routed by {version}: {reason}"


def first_reason(reason: str | None) -> str | None:
    """The reason an item was first routed, without the notes re-scoring added."""
    if reason is None:
        return None
    for note in ("; " + RESCORED_NOTE, "; re-routed by ", RESCORED_NOTE, "re-routed by "):
        if note in reason:
            reason = reason.split(note, 1)[0]
    return reason or None


def rescored_reason(
    previous: str | None, was: RouteDecision | str | None, placement: Placement, version: str
) -> str:
    """A waiting item's route reason after a newer model re-scored it: the reason it first
    came, then that it was re-scored (same route) or re-routed (the new route's reason,
    also when only a pause keeps it with a person)."""
    first = first_reason(previous)
    if placement.route.decision == was and placement.planned == placement.route:
        note = RESCORED_NOTE
    else:
        note = REROUTED_NOTE.format(version=version, reason=placement.route.reason)
    return (f"{first}; {note}" if first else note)[:500]


@dataclass(frozen=True)
class Placement:
    """What the model's answer earns (`planned`) and what happens (`route`: the plan,
    unless auto-accept is paused)."""

    planned: Route
    route: Route

    @property
    def auto_accepted(self) -> bool:
        return self.route.decision == RouteDecision.AUTO_ACCEPT

    @property
    def in_audit_frame(self) -> bool:
        """Auto-accept was planned for it: it belongs to the frame audited precision is
        estimated on, whether a person sees it or not."""
        return self.planned.decision in (RouteDecision.AUTO_ACCEPT, RouteDecision.AUDIT)


def place(
    *,
    policy: Policy,
    paused: str | None,
    queue_name: str,
    external_id: str,
    candidates: Sequence[Mapping] | None,
    detail: Mapping | None,
) -> Placement:
    """Routes one item; `paused` is why auto-accept is paused, or None."""
    planned = route_item(
        policy=policy,
        candidates=candidates,
        queue_name=queue_name,
        external_id=external_id,
        detail=dict(detail) if detail else None,
    )
    return Placement(planned, hold_when_paused(planned, paused))


def record_rows(
    placement: Placement,
    *,
    queue_id: int,
    item_id: int,
    candidates: Sequence[Mapping] | None,
    model_version: str | None,
    policy: Policy,
    paused: bool,
    now: datetime,
) -> tuple[dict | None, dict | None]:
    """(audit frame row or None, auto-accepted label row or None) of a placed item."""
    if candidates is None or not placement.in_audit_frame:
        return None, None
    frame = frame_row(
        queue_id=queue_id,
        item_id=item_id,
        candidates=candidates,
        model_version=model_version,
        audited=placement.planned.decision == RouteDecision.AUDIT,
        paused=paused,
        policy=policy,
        now=now,
    )
    if not placement.auto_accepted:
        return frame, None
    top = candidates[0]
    label = {
        "item_id": item_id,
        "queue_id": queue_id,
        "value": top["label"],
        "source": LabelSource.AUTO,
        "reviewers": [],
        "decided_at": now,
        "model_version": model_version,
        "model_label": top["label"],
        "model_score": top["score"],
    }
    return frame, label
