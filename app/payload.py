"""Payloads as the model and the business rules read them."""

from __future__ import annotations


def flatten(payload: dict) -> dict:
    """Top-level fields, and one level of nested objects as "outer.inner"."""
    out = {}
    for key, value in payload.items():
        if isinstance(value, dict):
            for inner, v in value.items():
                if not isinstance(v, dict | list):
                    out[f"{key}.{inner}"] = v
        elif not isinstance(value, list):
            out[key] = value
    return out
