"""The shape of one incoming item, validated by pydantic before anything is stored.

TypedDicts rather than models: pydantic validates straight into plain dicts, which is what
the bulk insert needs, without building and dumping an object per item and candidate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, NotRequired

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from typing_extensions import TypedDict

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
    # The known answer: the item becomes a gold item (app.desk.gold), never a label.
    gold_label: NotRequired[LabelText | None]


class BatchIn(BaseModel):
    model_config = _STRICT

    items: list[ItemIn]


def unstorable_values(item: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(dotted path, problem) for NUL characters and non-finite numbers in an item."""
    found: list[tuple[str, str]] = []

    def walk(value, path):
        if isinstance(value, str):
            if "\x00" in value:
                found.append((path, "NUL characters (\\u0000) are not allowed"))
        elif isinstance(value, float):
            if not math.isfinite(value):
                found.append((path, "numbers must be finite (no NaN or Infinity)"))
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k, path)
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}.{i}")

    walk(item, "")
    return found
