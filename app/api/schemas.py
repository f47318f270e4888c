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
