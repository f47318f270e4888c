"""The shape of one incoming item, validated by pydantic before anything is stored."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LabelText = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: LabelText
    score: float = Field(ge=0, le=1, allow_inf_nan=False)


class PredictionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_version: Annotated[str, StringConstraints(max_length=120)] | None = None
    candidates: list[Candidate] = Field(min_length=1, max_length=1000)


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: ExternalId
    payload: dict
    prediction: PredictionIn | None = None
    priority: int = Field(0, ge=-1000, le=1000)


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ItemIn]
