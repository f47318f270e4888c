"""Request and response shapes, for validation and for the OpenAPI document."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ErrorOut(BaseModel):
    error: str
    message: str
    details: list[dict] = []


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=200)
    comment: str | None = Field(None, max_length=5000)


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
