"""Turning a payload into the flat feature dict the default pipeline reads."""

from __future__ import annotations

import re

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

_WORD = re.compile(r"[a-z][a-z0-9]+")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_MAX_TOKENS = 64


def features_of(payload: dict, prefix: str = "") -> dict[str, float | str]:
    """Numbers stay numbers, short strings become categories, sentences become words."""
    out: dict[str, float | str] = {}
    for key, value in payload.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, int | float):
            if value == value and abs(value) != float("inf"):
                out[name] = float(value)
        elif isinstance(value, str):
            if " " in value.strip():
                words = [w for w in _WORD.findall(value.lower()) if w not in ENGLISH_STOP_WORDS]
                for word in words[:_MAX_TOKENS]:
                    out[f"{name}~{word}"] = 1.0
            elif value and not _DATE.match(value):
                # Dates as categories would be one rare value each: noise, not signal.
                out[name] = value[:100]
        elif isinstance(value, dict) and not prefix:
            out.update(features_of(value, prefix=f"{name}."))
    return out
