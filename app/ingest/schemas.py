"""The shape of one incoming item, validated by pydantic before anything is stored."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


def _no_nul(value):
    """Rejects NUL characters anywhere: PostgreSQL cannot store them in text or JSONB."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("NUL characters (\\u0000) are not allowed")
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_nul(k)
            _no_nul(v)
    elif isinstance(value, list):
        for v in value:
            _no_nul(v)
    return value


ExternalId = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(_no_nul)
]
LabelText = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_no_nul)]
Payload = Annotated[dict, AfterValidator(_no_nul)]


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
    payload: Payload
    prediction: PredictionIn | None = None
    priority: int = Field(0, ge=-1000, le=1000)


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ItemIn]
