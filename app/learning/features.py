"""The model's input columns: which payload fields it reads, as what kind (numeric,
categorical, text), laid out as the table the default pipeline takes."""

from __future__ import annotations

import re

import numpy as np

from app.payload import flatten

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")

_MAX_CATEGORIES_SHARE = (
    0.5  # more distinct values than half the rows: an identifier, not a category
)


def guess_kind(values: list) -> str | None:
    """numeric, categorical or text from the values seen; None for fields to leave out
    (dates, identifiers, empty)."""
    present = [v for v in values if v is not None and v != ""]
    if not present:
        return None
    if all(isinstance(v, int | float) for v in present):  # bools are ints
        return "numeric"
    strings = [v for v in present if isinstance(v, str)]
    if len(strings) < len(present) * 0.9:
        return "categorical"
    if sum(1 for v in strings if _DATE.match(v)) > len(strings) * 0.9:
        return None
    if sum(1 for v in strings if " " in v.strip()) > len(strings) * 0.3:
        return "text"
    distinct = len(set(strings))
    if distinct > 20 and distinct > len(strings) * _MAX_CATEGORIES_SHARE:
        return None
    return "categorical"


def choose_columns(payloads: list[dict], spec: list[dict] | None) -> list[dict]:
    """The model's input columns, [{"name", "kind"}], in a stable order.

    With a spec (the queue's `features` policy) exactly those fields are used, kinds guessed
    where not given; without one, every field whose kind can be guessed.
    """
    flat = [flatten(p) for p in payloads]
    if spec:
        names = [f["name"] for f in spec]
        given = {f["name"]: f.get("kind") for f in spec}
    else:
        names = sorted({k for row in flat for k in row})
        given = {}
    columns = []
    for name in names:
        kind = given.get(name) or guess_kind([row.get(name) for row in flat])
        if kind is None and spec:
            kind = "categorical"  # named by a person: keep it, as the safest kind
        if kind is not None:
            columns.append({"name": name, "kind": kind})
    return columns


def _numeric(value) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and value == value and abs(value) != float("inf"):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return float("nan")
        return number if number == number and abs(number) != float("inf") else float("nan")
    return float("nan")


def _text(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def table(payloads: list[dict], columns: list[dict]):
    """The payloads as the pipeline's input: a 2-D object array, one column per feature."""
    out = np.empty((len(payloads), len(columns)), dtype=object)
    convert = [_numeric if c["kind"] == "numeric" else _text for c in columns]
    names = [c["name"] for c in columns]
    for i, payload in enumerate(payloads):
        flat = flatten(payload)
        for j, (name, conv) in enumerate(zip(names, convert, strict=True)):
            out[i, j] = conv(flat.get(name))
    return out
