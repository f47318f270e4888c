"""Measured coverage of a version's candidate sets on recent human labels (issue 10,
point 5): for the quality report (app.trust.coverage) and the model card.

For a version: among the items people decided after it was trained that
had a candidate set from it (the one shown when they decided), how often did the set hold
the answer they gave? Overall and per answer, with a Wilson interval (statsmodels) and the
sample size. These labels are newer than anything the version trained or calibrated on, so
they check its promise on data it did not see.

Items auto-accepted without a person have no human answer; only their audit sample is in
here, so the figure describes the items people decide (sets of several answers, unsure
ones, audits), not the whole stream.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session, col

from app.learning.conformal import Conformal
from app.learning.intervals import INTERVAL_ALPHA, INTERVAL_METHOD, coverage_interval
from app.models import Label, ModelVersion, Prediction, Queue
from app.queues.service import HUMAN_SOURCES, policy_of

# The newest decisions measured: recent enough to follow the stream, enough for a tight
# interval (±1.4 points at 95% coverage), one bounded read.
WINDOW = 5000
_CHUNK = 500


def measured_coverage(*, session: Session, queue: Queue, version: ModelVersion) -> dict:
    """{"target", "measured", "lower", "upper", "n", "per_answer": {answer: {"measured",
    "lower", "upper", "n"}}, ...} for the version's sets on human decisions made after it
    was trained."""
    conformal = Conformal.from_dict((version.card or {}).get("conformal"))
    metrics = version.metrics or {}
    hits, by_answer, unknown = _hits(session, queue, version)
    return {
        # The version's own target: the policy's may have changed since it was trained.
        "target": conformal.coverage if conformal else policy_of(queue).coverage,
        **coverage_interval(sum(hits.values()), len(hits)),
        "per_answer": {
            answer: coverage_interval(sum(h), len(h)) for answer, h in sorted(by_answer.items())
        },
        "version": version.version,
        "mode": conformal.mode if conformal else None,
        "guarantee": conformal.guarantee if conformal else None,
        "since": version.created_at.isoformat(),
        "window": WINDOW,
        "interval": {"method": INTERVAL_METHOD, "confidence": 1 - INTERVAL_ALPHA},
        "not_measurable": unknown,
        "held_out": {
            "measured": metrics.get("coverage"),
            "lower": metrics.get("coverage_lower"),
            "upper": metrics.get("coverage_upper"),
            "n": metrics.get("n_eval"),
        },
    }


def _hits(session: Session, queue: Queue, version: ModelVersion):
    """Per label id: did the shown set hold the answer; the same per answer; and how many
    decisions could not be judged (a set longer than the candidates stored)."""
    labels = session.execute(
        select(col(Label.id), col(Label.item_id), col(Label.value), col(Label.decided_at))
        .where(
            col(Label.queue_id) == queue.id,
            col(Label.source).in_(HUMAN_SOURCES),
            col(Label.decided_at) > version.created_at,
        )
        .order_by(col(Label.decided_at).desc(), col(Label.id).desc())
        .limit(WINDOW)
    ).all()
    shown = {}
    item_ids = [r.item_id for r in labels]
    for start in range(0, len(item_ids), _CHUNK):
        shown.update(_shown_sets(session, version.version, item_ids[start : start + _CHUNK]))
    hits: dict[int, bool] = {}
    by_answer: dict[str, list[bool]] = {}
    unknown = 0
    for label in labels:
        # The newest set of this version made before the decision: what the reviewer saw.
        seen = [s for s in shown.get(label.item_id, []) if s[0] <= label.decided_at]
        if not seen:
            continue
        _, candidates, detail = seen[-1]
        listed = {c.get("label") for c in candidates if isinstance(c, dict)}
        if label.value not in listed and len(candidates) < int(detail.get("set_size") or 0):
            unknown += 1  # in the part of a long set that was not stored: cannot tell
            continue
        hit = label.value in listed
        hits[label.id] = hit
        by_answer.setdefault(label.value, []).append(hit)
    return hits, by_answer, unknown


def _shown_sets(session: Session, version: str, item_ids: list[int]) -> dict[int, list]:
    """Per item, the candidate sets the version gave it, oldest first."""
    rows = session.execute(
        select(
            col(Prediction.item_id),
            col(Prediction.created_at),
            col(Prediction.candidates),
            col(Prediction.detail),
        )
        .where(
            col(Prediction.item_id).in_(item_ids),
            col(Prediction.model_version) == version,
            col(Prediction.source) == "model",
        )
        .order_by(col(Prediction.item_id), col(Prediction.id))
    ).all()
    out: dict[int, list] = {}
    for r in rows:
        if isinstance(r.detail, dict) and "set_size" in r.detail:
            out.setdefault(r.item_id, []).append((r.created_at, r.candidates or [], r.detail))
    return out
