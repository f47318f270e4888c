"""Auto-accept precision, estimated from the answers people gave to items the model would
have auto-accepted (issue 10, point 1).

Every item whose answer would be auto-accepted is written to the audit frame with its
confidence band (the stratum) and the chance that a person answers it anyway: the audit
rate when it was routed, or 1 while auto-accept is paused. Audits are drawn by the
deterministic `audit_draw`, so within a band they are a random sample of the band's items.

The estimate is stratified: each band's precision (the Hajek mean of its answered items,
weighted by 1 / their chance of being answered, so audit rates that changed over time
still count fairly) is weighted by the band's share of the frame. A band with no answered
item yet is merged into its neighbour (collapsed strata). The interval is statsmodels'
Clopper-Pearson interval (the exact binomial one, `method="beta"`) at the stratified estimate
with Kish's effective sample size n_eff = 1 / sum(w_i^2) of the items' normalised weights:
with equal weights it is the plain Clopper-Pearson interval on n answers; unequal weights
shrink n_eff and widen it. `lower` and `upper` are each one-sided bounds at the queue's
`confidence`. Clopper-Pearson rather than Wilson because the lower bound drives an alarm and
a promise: its one-sided coverage is at least `confidence` at every n and precision, where
Wilson's dips below it at a few dozen audits (bench/trust.py measures both).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, case, func, select
from sqlmodel import Session, col
from statsmodels.stats.proportion import proportion_confint

from app.models import AuditFrame, Label, ModelVersion, Queue, utcnow
from app.queues.events import pause_state
from app.queues.service import HUMAN_SOURCES, Policy, policy_of

METHOD = "clopper-pearson"
# statsmodels' name for it.
_STATSMODELS_METHOD = "beta"


def _band_order(band: str) -> float:
    return float(band.split("-")[0])


@dataclass(frozen=True)
class Cell:
    """Frame items sharing a band and a chance of being answered by a person."""

    band: str
    rate: float
    population: int  # items in the frame
    answered: int  # of those sent to a person, the ones a person has answered
    right: int  # of those, the answers equal to the model's


def stratified_precision(cells: list[Cell], confidence: float) -> dict:
    """The frame's precision: estimate, one-sided `confidence` bounds, answers (n) and the
    effective sample size behind the interval (see the module's docstring)."""
    answered = sum(c.answered for c in cells)
    empty = {
        "estimate": None,
        "lower": None,
        "upper": None,
        "n": answered,
        "n_effective": 0.0,
        "method": METHOD,
        "confidence": confidence,
    }
    total = sum(c.population for c in cells)
    if answered == 0 or total == 0:
        return empty
    by_band: dict[str, list[Cell]] = defaultdict(list)
    for c in cells:
        by_band[c.band].append(c)
    strata = _collapse([by_band[b] for b in sorted(by_band, key=_band_order)])
    estimate = 0.0
    sum_w2 = 0.0
    for stratum in strata:
        share = sum(c.population for c in stratum) / total
        sampled = [c for c in stratum if c.answered and c.rate > 0]
        inverse = sum(c.answered / c.rate for c in sampled)
        estimate += share * sum(c.right / c.rate for c in sampled) / inverse
        sum_w2 += sum(c.answered * (share / (c.rate * inverse)) ** 2 for c in sampled)
    estimate = min(max(estimate, 0.0), 1.0)
    n_eff = 1.0 / sum_w2
    lower, upper = proportion_confint(
        estimate * n_eff, n_eff, alpha=2 * (1 - confidence), method=_STATSMODELS_METHOD
    )
    return {
        **empty,
        "estimate": round(estimate, 4),
        "lower": round(float(lower), 4),
        "upper": round(float(upper), 4),
        "n_effective": round(n_eff, 1),
    }


def _collapse(bands: list[list[Cell]]) -> list[list[Cell]]:
    """Merges each band without an answer into the next one (the last into the previous)."""
    strata: list[list[Cell]] = []
    pending: list[Cell] = []
    for cells in bands:
        pending.extend(cells)
        if any(c.answered and c.rate > 0 for c in pending):
            strata.append(pending)
            pending = []
    if pending and strata:
        strata[-1].extend(pending)
    return strata


def half_width(n: float, precision: float, confidence: float) -> float | None:
    """Half the width of the interval `n` answers would give around `precision`."""
    if n < 1:
        return None
    lower, upper = proportion_confint(
        precision * n, n, alpha=2 * (1 - confidence), method=_STATSMODELS_METHOD
    )
    return round(float(upper - lower) / 2, 4)


def alarm_target(policy: Policy) -> float:
    """The precision auto-accepted answers must keep: the queue's target_precision, or the
    auto-accept threshold when it states none."""
    if policy.target_precision is not None:
        return policy.target_precision
    return policy.auto_accept_threshold


@dataclass(frozen=True)
class FrameRow:
    model_version: str | None
    answer: str
    cell: Cell


def frame_rows(*, session: Session, queue: Queue) -> list[FrameRow]:
    """The queue's audit frame, grouped: one grouped query over its index."""
    answered = and_(col(AuditFrame.to_person), col(Label.source).in_(HUMAN_SOURCES))
    rows = session.execute(
        select(
            col(AuditFrame.model_version),
            col(AuditFrame.answer),
            col(AuditFrame.band),
            col(AuditFrame.sample_rate),
            func.count(),
            func.sum(case((answered, 1), else_=0)),
            func.sum(case((and_(answered, col(Label.value) == AuditFrame.answer), 1), else_=0)),
        )
        # Only items sent to a person can have a person's answer: the rest join nothing.
        .outerjoin(Label, and_(col(Label.item_id) == AuditFrame.item_id, col(AuditFrame.to_person)))
        .where(col(AuditFrame.queue_id) == queue.id)
        .group_by(
            col(AuditFrame.model_version),
            col(AuditFrame.answer),
            col(AuditFrame.band),
            col(AuditFrame.sample_rate),
        )
    ).all()
    return [
        FrameRow(version, answer, Cell(band, rate, n, int(a or 0), int(r or 0)))
        for version, answer, band, rate, n, a, r in rows
    ]


def active_version(session: Session, queue: Queue) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(col(ModelVersion.queue_id) == queue.id, col(ModelVersion.active))
    )


def scope_rows(rows: list[FrameRow], version: ModelVersion | None) -> list[FrameRow]:
    """The answers the headline estimate judges: the active model's, else every one."""
    if version is None:
        return rows
    return [r for r in rows if r.model_version == version.version]


def headline(*, session: Session, queue: Queue) -> dict:
    """The headline estimate and the scope it covers (used by the alarm check)."""
    version = active_version(session, queue)
    rows = scope_rows(frame_rows(session=session, queue=queue), version)
    estimate = stratified_precision([r.cell for r in rows], policy_of(queue).confidence)
    return {**estimate, "model_version": version.version if version else None}


def _budget(session: Session, queue: Queue, policy: Policy, estimate: float | None) -> dict:
    """What the audit rates buy: audits a week at the last four weeks' pace (each band's
    eligible items at its band's rate), and the interval's half-width after one and four
    weeks of them."""
    since = utcnow() - timedelta(days=28)
    per_band = session.execute(
        select(col(AuditFrame.band), func.count())
        .where(col(AuditFrame.queue_id) == queue.id, col(AuditFrame.created_at) >= since)
        .group_by(col(AuditFrame.band))
    ).all()
    weekly = sum(n for _, n in per_band) / 4
    audits = (
        sum(n * policy.audit_rate_by_band.get(band, policy.audit_rate) for band, n in per_band) / 4
    )
    around = estimate if estimate is not None else alarm_target(policy)
    week = half_width(audits, around, policy.confidence)
    month = half_width(4 * audits, around, policy.confidence)
    rate = f"{policy.audit_rate:.0%}"
    if policy.audit_rate_by_band:
        overall = audits / weekly if weekly else policy.audit_rate
        rate = f"{overall:.1%} (rates per band)"
    if week is None and month is None:
        sentence = (
            f"At {rate} audits, about {audits:.1f} audits a week at the last four weeks' "
            "pace: too few for a precision interval yet."
        )
    else:
        parts = [f"after one week about ±{week:.3f}"] if week is not None else []
        parts.append(f"after four weeks about ±{month:.3f}")
        sentence = (
            f"At {rate} audits, about {audits:.0f} audits a week: the precision interval "
            f"({policy.confidence:.0%} each side) is {', '.join(parts)}."
        )
    return {
        "audit_rate": policy.audit_rate,
        "audit_rate_by_band": policy.audit_rate_by_band,
        "eligible_per_week": round(weekly, 1),
        "audits_per_week": round(audits, 1),
        "half_width_one_week": week,
        "half_width_four_weeks": month,
        "sentence": sentence,
    }


def _active_metrics(version: ModelVersion | None) -> dict:
    metrics = (version.metrics if version is not None else None) or {}
    auto = metrics.get("auto_accept") if isinstance(metrics, dict) else None
    return auto if isinstance(auto, dict) else {}


def auto_accept_section(*, session: Session, queue: Queue) -> dict:
    """The contract's `auto_accept`: policy, pause, and the audited precision of the active
    model's auto-accepted answers, broken down by version, answer and confidence band."""
    policy = policy_of(queue)
    version = active_version(session, queue)
    rows = frame_rows(session=session, queue=queue)
    scoped = scope_rows(rows, version)
    confidence = policy.confidence
    precision = stratified_precision([r.cell for r in scoped], confidence)

    versions: dict[str | None, list[Cell]] = defaultdict(list)
    answers: dict[str, list[Cell]] = defaultdict(list)
    bands: dict[str, list[Cell]] = defaultdict(list)
    for r in rows:
        versions[r.model_version].append(r.cell)
    for r in scoped:
        answers[r.answer].append(r.cell)
        bands[r.cell.band].append(r.cell)
    total = sum(c.population for cells in bands.values() for c in cells)
    paused = pause_state(session=session, queue=queue)
    learned = _active_metrics(version)
    share = learned.get("expected_share")
    return {
        "enabled": bool(learned.get("enabled", True)),
        "paused": paused is not None,
        "paused_since": paused["since"] if paused else None,
        "paused_reason": paused["reason"] if paused else None,
        "target_precision": policy.target_precision,
        "alarm_target": alarm_target(policy),
        "confidence": confidence,
        "expected_share": share if isinstance(share, int | float) else None,
        "threshold": policy.auto_accept_threshold,
        "model_version": version.version if version else None,
        "precision": precision,
        "by_version": [
            {"model_version": v, **stratified_precision(cells, confidence)}
            for v, cells in sorted(versions.items(), key=lambda kv: kv[0] or "")
        ],
        "by_answer": {
            a: stratified_precision(cells, confidence) for a, cells in sorted(answers.items())
        },
        "by_band": [
            {
                "band": b,
                "share": round(sum(c.population for c in cells) / total, 4),
                "items": sum(c.population for c in cells),
                "audit_rates": sorted({c.rate for c in cells}),
                **stratified_precision(cells, confidence),
            }
            for b, cells in sorted(bands.items(), key=lambda kv: _band_order(kv[0]))
        ],
        "budget": _budget(session, queue, policy, precision["estimate"]),
    }
