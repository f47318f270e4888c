"""Request and response shapes, for validation and for the OpenAPI document."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from app.review.actions import MAX_TEXT


class ErrorOut(BaseModel):
    error: str
    message: str
    details: list[dict] = []


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=200)
    comment: str | None = Field(None, max_length=5000)


class EscalateIn(BaseModel):
    """Why the claimed item needs a lead."""

    model_config = ConfigDict(extra="forbid")
    noun: ClassVar[str] = "escalation"  # "The escalation is not valid."

    reason: str = Field(min_length=1, max_length=MAX_TEXT)


class FlagIn(BaseModel):
    """What looks suspicious about the claimed item (the caller still answers it)."""

    model_config = ConfigDict(extra="forbid")

    comment: str = Field(min_length=1, max_length=MAX_TEXT)


class HeartbeatOut(BaseModel):
    expires_at: str


class IngestOut(BaseModel):
    received: int
    created: int
    duplicates: int
    routed: dict[str, int]


class RetrainOut(BaseModel):
    job_id: str


class LabelsQuery(BaseModel):
    format: str = Field("jsonl", pattern="^(jsonl|csv|parquet)$")
    since: str | None = None


class PrecisionOut(BaseModel):
    estimate: float | None
    lower: float | None
    upper: float | None
    n: int
    method: str


class AutomationOut(BaseModel):
    """Whether auto-accept runs, what it promises and its audited precision."""

    enabled: bool
    paused: bool
    target_precision: float | None
    confidence: float
    expected_share: float | None
    precision: PrecisionOut


class CoverageOut(BaseModel):
    """Candidate-set coverage measured on recent human decisions."""

    target: float
    measured: float | None
    lower: float | None
    n: int
    per_answer: dict[str, dict]


class DriftFeatureOut(BaseModel):
    name: str
    psi: float


class DriftOut(BaseModel):
    """Recent inputs against the active model's training profile (status: ok, warning,
    alarm, unknown)."""

    status: str
    window: int
    features: list[DriftFeatureOut]


class AlarmOut(BaseModel):
    kind: str  # precision_below_target, input_drift
    since: str
    detail: str
    paused: bool


class QualityOut(BaseModel):
    """A queue's quality report (docs/API.md lists every field; more may be added)."""

    auto_accept: AutomationOut
    coverage: CoverageOut
    drift: DriftOut
    alarms: list[AlarmOut]


class ResumeIn(BaseModel):
    """Why a lead resumes auto-accept after an alarm paused it (kept with the event)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    noun: ClassVar[str] = "resume request"  # "The resume request is not valid."

    reason: str = Field(min_length=1, max_length=2000)


class AdjudicateIn(BaseModel):
    """A lead's final answer for an item waiting for one, and why."""

    model_config = ConfigDict(extra="forbid")
    noun: ClassVar[str] = "adjudication"  # "The adjudication is not valid."

    label: str = Field(min_length=1, max_length=200)
    comment: str | None = Field(None, max_length=MAX_TEXT)


class ReviewShownOut(BaseModel):
    """What a reviewer was shown of the model when answering."""

    prediction_id: int | None
    model_version: str | None
    source: str | None
    candidates: list[dict]


class AdjudicationReviewOut(BaseModel):
    reviewer: str
    label: str
    comment: str | None
    model_feedback: str | None
    created_at: str
    shown: ReviewShownOut | None


class AdjudicationReasonOut(BaseModel):
    kind: str  # escalated, disagreement, flagged
    by: str | None
    text: str | None
    at: str | None


class AdjudicationEntryOut(BaseModel):
    """One item waiting for a lead (docs/API.md lists every field)."""

    external_id: str
    status: str
    payload: dict
    reasons: list[AdjudicationReasonOut]
    reviews: list[AdjudicationReviewOut]
    flags: list[dict]
    second_reviews: list[str]
    prediction: dict | None
    label: dict | None
    created_at: str


class AdjudicationsOut(BaseModel):
    waiting: int
    items: list[AdjudicationEntryOut]


class AdjudicationOut(BaseModel):
    """The item after the lead's decision (shaped as GET .../items/{external_id}) and what
    the decision did."""

    external_id: str
    status: str
    label: dict | None
    adjudication: dict


class GoldIn(BaseModel):
    """The known answer of a gold item (one of the queue's labels)."""

    model_config = ConfigDict(extra="forbid")
    noun: ClassVar[str] = "gold item"  # "The gold item is not valid."

    label: str = Field(min_length=1, max_length=200)


class IntervalOut(BaseModel):
    """A measured share with its 95% interval (None figures when nothing was measured)."""

    estimate: float | None
    lower: float | None
    upper: float | None
    n: int
    method: str


class GoldItemOut(BaseModel):
    external_id: str
    label: str
    model_label: str | None
    answers: int
    correct: int
    retired: bool
    created_at: str


class GoldReviewerOut(BaseModel):
    reviewer: str
    accuracy: IntervalOut
    automation_bias: IntervalOut


class GoldOut(BaseModel):
    """Gold items and reviewers' accuracy on them; automation bias is the share of answers
    that followed the model's top answer on gold items where it was wrong."""

    queue: str
    gold_rate: float
    items: list[GoldItemOut]
    accuracy: IntervalOut
    automation_bias: IntervalOut
    reviewers: list[GoldReviewerOut]


class GoldMarkOut(BaseModel):
    external_id: str
    gold: bool
    label: str | None
    # "marked", "returned" (back to the queue as an ordinary item) or "retired".
    outcome: str


class AgreementQuery(BaseModel):
    days: int = Field(30, ge=1, le=3650)


class FigureOut(BaseModel):
    """An agreement figure with its bootstrap interval; `note` says why a figure is missing."""

    estimate: float | None
    lower: float | None
    upper: float | None
    n: int
    method: str
    note: str | None


class PairOut(BaseModel):
    reviewers: list[str]
    kappa: FigureOut


class AgreementOut(BaseModel):
    queue: str
    days: int
    since: str
    min_items: int
    items: int
    reviewers: list[str]
    alpha: FigureOut
    pairs: list[PairOut]


class MyQueueStatsOut(BaseModel):
    queue: str
    today: int
    week: int
    gold_accuracy: IntervalOut | None = None


class MyStatsOut(BaseModel):
    """The caller's own figures: decisions today and this week (UTC), median seconds from
    claim to decision this week, agreement with others over the last 30 days."""

    user: str
    today: int
    week: int
    median_seconds_per_item: float | None
    agreement: dict
    queues: list[MyQueueStatsOut]


class SlaBreachesOut(BaseModel):
    decided_late: int | None
    waiting_late: int | None
    total: int | None


class SlaOut(BaseModel):
    """A queue's service level: the target, the oldest undecided item's age against it, and
    the breaches counted against the current target (counts are null without an SLA)."""

    sla_hours: float | None
    nearing_share: float
    oldest_waiting_seconds: float | None
    oldest_share: float | None
    breaches: SlaBreachesOut
    nearing: int | None
    words: str


class PolicyChangeOut(BaseModel):
    id: int
    at: str
    by: str | None
    via: str  # page, api
    changes: dict[str, dict]  # field -> {"before", "after"}


class PolicyChangesOut(BaseModel):
    """A queue's policy changes, newest first."""

    changes: list[PolicyChangeOut]


class PolicyEffectOut(BaseModel):
    auto_accept_share: float
    audit_share: float
    review_share: float
    reviews_per_100_items: float
    reviews_per_day: float | None
    sla_hours: float | None
    waiting_late: int | None
    nearing: int | None


class PolicyPreviewOut(BaseModel):
    """What a policy change would do on the queue's recent items; nothing is saved."""

    items: int
    days: float | None
    changed: list[str]
    current: PolicyEffectOut
    proposed: PolicyEffectOut


class DashboardQuery(BaseModel):
    window: str = Field("7d", pattern="^(24h|7d|30d)$")


class DashboardPanelOut(BaseModel):
    """One chart: its kind (lines, columns, bars, reliability, intervals), the numbers it
    draws, and the plain-words caption the page shows under it."""

    key: str
    title: str
    chart: str
    data: dict
    caption: str
    empty: bool


class DashboardOut(BaseModel):
    """A queue's dashboard figures over a window (docs/API.md describes each panel)."""

    queue: str
    window: str
    generated_at: str
    panels: list[DashboardPanelOut]
