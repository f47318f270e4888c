"""The routing decision: auto-accept, review or audit, always with its reason."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.queues.service import Policy
from app.states import RouteDecision

# The queue's own model auto-accepts nothing until every answer of the queue has at least
# this many human labels in the data the model was built from (scoring gives the fewest in
# each set's detail): below it, per-answer figures rest on too few labels.
MIN_LABELS_PER_ANSWER = 20


@dataclass(frozen=True)
class Route:
    decision: RouteDecision
    reason: str


def audit_draw(queue_name: str, external_id: str) -> float:
    """A uniform number in [0, 1) fixed by the item, so re-sending routes it the same way."""
    digest = hashlib.blake2b(f"{queue_name}\x00{external_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def route_item(
    *,
    policy: Policy,
    candidates: Sequence[Mapping[str, Any]] | None,
    queue_name: str,
    external_id: str,
    detail: dict | None = None,
) -> Route:
    """Decides whether a person must see this item, given its sorted candidates.

    `detail` comes with the queue's own model (a conformal set, and under "drift" what
    makes the item unlike the model's training data) or a business rule; a producer's
    prediction has none and is judged by score and margin.
    """
    detail = detail or {}
    if "fallback" in detail:
        why = detail["fallback"] or "no model answer"
        if detail.get("rule"):
            return Route(
                RouteDecision.REVIEW, f"{why}: business rule '{detail['rule']}' suggests an answer"
            )
        return Route(
            RouteDecision.REVIEW, f"{why}, and no business rule applies: a person must answer"
        )
    if not candidates:
        return Route(RouteDecision.REVIEW, "no prediction: a person must answer")
    if detail.get("drift"):
        return Route(RouteDecision.REVIEW, unlike_training_reason(detail["drift"]))
    if "set_size" in detail:
        return _route_by_set(policy, candidates, detail, queue_name, external_id)
    top = candidates[0]["score"]
    second = candidates[1]["score"] if len(candidates) > 1 else 0.0
    margin = top - second
    if top < policy.auto_accept_threshold:
        return Route(
            RouteDecision.REVIEW,
            f"top score {top:.2f} is below the auto-accept threshold "
            f"{policy.auto_accept_threshold:.2f}",
        )
    if margin < policy.min_margin:
        return Route(
            RouteDecision.REVIEW,
            f"top two candidates are {margin:.2f} apart, "
            f"less than the margin {policy.min_margin:.2f}",
        )
    return _accept_or_audit(
        policy,
        queue_name,
        external_id,
        top,
        f"score {top:.2f}",
        f"top score {top:.2f} ≥ {policy.auto_accept_threshold:.2f} "
        f"and {margin:.2f} ahead of the next candidate",
    )


REASON_LIMIT = 500  # Item.route_reason's length


def unlike_training_reason(hits: list[dict]) -> str:
    """The route reason of an item unlike the model's training data (the drift and novelty
    guard's findings, see learning/profile.py): the first two, then how many more."""
    # Not "; ": that separates notes added later to a route reason (review/plain_words.py).
    shown = ", and ".join(h["reason"] for h in hits[:2])
    if len(hits) > 2:
        shown += f" (and {len(hits) - 2} more)"
    tail = ": a person must check"
    if len(shown) + len(tail) > REASON_LIMIT:
        shown = shown[: REASON_LIMIT - len(tail) - 3] + "..."
    return shown + tail


def audit_reason(rate: float, what: str) -> str:
    """The route reason of an audited item (`what`: "score 0.97", "confidence 0.97")."""
    share = f" ({rate:.0%})" if rate > 0 else ""
    return f"random audit{share} of an item that would be auto-accepted ({what})"


def _accept_or_audit(policy, queue_name, external_id, top: float, what: str, why: str) -> Route:
    """An item that may be auto-accepted: unless the audit draw picks it for a person, at the
    audit rate of its confidence band."""
    rate = policy.audit_rate_for(top)
    if audit_draw(queue_name, external_id) < rate:
        return Route(RouteDecision.AUDIT, audit_reason(rate, what))
    return Route(RouteDecision.AUTO_ACCEPT, why)


def _route_by_set(policy, candidates, detail, queue_name, external_id) -> Route:
    """The queue's own model: auto-accept only a single-answer conformal set whose calibrated
    confidence clears the threshold, from a model that has enough labels of every answer;
    under a target precision, the threshold its training run chose decides instead of the
    set's size (the set's other guards still apply)."""
    top = candidates[0]["score"]
    size, coverage = detail["set_size"], detail["coverage"]
    if detail.get("best_guess_only") or size == 0:
        return Route(
            RouteDecision.REVIEW,
            f"no answer is likely enough for the {coverage:.0%} candidate set: the model's "
            f"best guess '{candidates[0]['label']}' is shown for a person to check",
        )
    if detail.get("unseen"):
        # A long set can push them out of the stored candidates: then only their count.
        names = [c["label"] for c in candidates if c.get("unseen")][:3]
        more = detail["unseen"] - len(names)
        listed = (
            "the answer "
            + ", ".join(f"'{n}'" for n in names)
            + (f" and {more} more" if more else "")
            if names
            else f"{more} of the queue's answers"
        )
        return Route(
            RouteDecision.REVIEW,
            f"the model has never seen {listed}: offered as candidates too, and "
            "nothing is auto-accepted until it has",
        )
    fewest = detail.get("fewest_labels")
    too_few = fewest is not None and fewest["n"] < MIN_LABELS_PER_ANSWER
    if policy.target_precision is not None:
        route = _route_by_target(policy, candidates, detail, queue_name, external_id)
        if route.decision == RouteDecision.REVIEW or not too_few:
            return route
        return _too_few_labels(fewest)
    if size != 1:
        return Route(
            RouteDecision.REVIEW,
            f"the {coverage:.0%} candidate set holds {size} answers: a person must choose",
        )
    if top < policy.auto_accept_threshold:
        return Route(
            RouteDecision.REVIEW,
            f"calibrated confidence {top:.2f} is below the auto-accept threshold "
            f"{policy.auto_accept_threshold:.2f}",
        )
    if too_few:
        return _too_few_labels(fewest)
    return _accept_or_audit(
        policy,
        queue_name,
        external_id,
        top,
        f"confidence {top:.2f}",
        f"the only answer in the {coverage:.0%} candidate set, "
        f"calibrated confidence {top:.2f} ≥ {policy.auto_accept_threshold:.2f}",
    )


def _too_few_labels(fewest: dict) -> Route:
    return Route(
        RouteDecision.REVIEW,
        f"answer '{fewest['answer']}' has {fewest['n']} human labels, fewer than the "
        f"{MIN_LABELS_PER_ANSWER} every answer needs before the model auto-accepts anything",
    )


def _route_by_target(policy, candidates, detail, queue_name, external_id) -> Route:
    """The queue's own model under a target precision: auto-accept when the calibrated top
    score clears the threshold its training run chose for that target (see
    app.learning.auto_accept); with no such threshold, a person answers."""
    top = candidates[0]["score"]
    target = policy.target_precision
    rule = detail.get("auto_accept")
    if rule is None:
        return Route(
            RouteDecision.REVIEW,
            f"the queue asks for {target:.1%} precision and this model was trained without "
            "that target: nothing is auto-accepted until it is retrained",
        )
    if rule["target_precision"] < target:
        return Route(
            RouteDecision.REVIEW,
            f"this model's auto-accept rule holds {rule['target_precision']:.1%} precision, "
            f"the queue now asks for {target:.1%}: nothing is auto-accepted until it is retrained",
        )
    threshold = rule.get("threshold")
    promise = f"{rule['target_precision']:.1%} precision with {rule['confidence']:.0%} confidence"
    if threshold is None:
        return Route(
            RouteDecision.REVIEW,
            f"no auto-accept rule reaches {promise}: {rule.get('why_none') or 'none found'}",
        )
    if top < threshold:
        return Route(
            RouteDecision.REVIEW,
            f"calibrated confidence {top:.2f} is below {threshold:.2f}, the threshold chosen "
            f"for {promise}",
        )
    return _accept_or_audit(
        policy,
        queue_name,
        external_id,
        top,
        f"confidence {top:.2f}",
        f"calibrated confidence {top:.2f} ≥ {threshold:.2f}, the threshold chosen for {promise}",
    )


def hold_when_paused(route: Route, paused: str | None) -> Route:
    """While an alarm holds auto-accept paused, an item it would accept goes to a person."""
    if paused is None or route.decision != RouteDecision.AUTO_ACCEPT:
        return route
    return Route(
        RouteDecision.REVIEW,
        f"auto-accept paused: {paused}; a lead must resume it ({route.reason})"[:500],
    )
