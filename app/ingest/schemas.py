"""The shape of one incoming item, validated by pydantic before anything is stored.

TypedDicts rather than models: pydantic validates straight into plain dicts, which is what
the bulk insert needs, without building and dumping an object per item and candidate.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from typing_extensions import NotRequired, TypedDict

_STRICT = ConfigDict(extra="forbid")

ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
LabelText = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Candidate(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    label: LabelText
    score: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class PredictionIn(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    model_version: NotRequired[Annotated[str, StringConstraints(max_length=120)] | None]
    candidates: Annotated[list[Candidate], Field(min_length=1, max_length=1000)]


class ItemIn(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    external_id: ExternalId
    payload: dict
    prediction: NotRequired[PredictionIn | None]
    priority: NotRequired[Annotated[int, Field(ge=-1000, le=1000)]]


class BatchIn(BaseModel):
    model_config = _STRICT

    items: list[ItemIn]


def nul_paths(item: dict) -> list[str]:
    """Dotted paths of strings holding NUL, which PostgreSQL cannot store in text or JSON."""
    found: list[str] = []

    def walk(value, path):
        if isinstance(value, str):
            if "\x00" in value:
                found.append(path)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k, path)
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}.{i}")

    walk(item, "")
    return found
