"""The profile of a model's training inputs, kept on its card: per numeric field its range and
quantile bins, per categorical field its known values and their shares, per text field the
share of words the model knows. Scoring checks each item against it (an item outside what the
model learned from is never auto-accepted) and the queue's drift report compares recent items
with it (see app/learning/drift.py).

Everything here is plain JSON, vectorised over a features.table() array.
"""

from __future__ import annotations

import numpy as np

from app.learning.pipeline import base_pipeline

PROFILE_VERSION = 1
# Quantile bins per numeric field (and for the known-word share of text): deciles, the usual
# choice for the population stability index.
BINS = 10
# How far past the training range a number may lie before the item goes to a person, as a
# share of the range: the largest of a few thousand training values is rarely the largest
# value the queue will ever see, but ten times the range is no longer the same kind of data.
RANGE_TOLERANCE = 0.5
# The categories kept per field for the drift report (the rest count as one "other" bucket).
TOP_CATEGORIES = 20
# A categorical field whose held-out rows brought more unseen values than this share is open
# (a merchant name, a city): a new value is ordinary there and is not a reason for review.
OPEN_FIELD_SHARE = 0.01
# Known values kept per closed field; a field with more distinct values is treated as open.
MAX_KNOWN = 1000
# Training rows whose known-word share makes a text field's bins, at most.
TEXT_ROWS = 20_000


def text_vectorizers(model, columns: list[dict]) -> dict:
    """The fitted text vectorizer of each text column, by name (their vocabularies are the
    words the model knows)."""
    pipe = base_pipeline(model)
    if pipe is None:
        return {}
    parts = pipe.named_steps["features"].named_transformers_
    return {
        c["name"]: parts[f"text:{c['name']}"]
        for c in columns
        if c["kind"] == "text" and f"text:{c['name']}" in parts
    }


def known_word_share(texts, vectorizer) -> np.ndarray:
    """Per text, the share of its words (as the model's analyzer splits them) that are in the
    model's vocabulary; NaN for a text without words."""
    analyze = vectorizer.build_analyzer()
    vocabulary = vectorizer.vocabulary_
    out = np.full(len(texts), np.nan)
    for i, text in enumerate(texts):
        words = analyze(text) if text else []
        if words:
            out[i] = sum(1 for w in words if w in vocabulary) / len(words)
    return out


def _numbers(column) -> np.ndarray:
    return np.asarray(column, dtype=float)


def _binned(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Bin index per value (0..len(edges)); missing values get len(edges) + 1."""
    index = np.searchsorted(np.asarray(edges, dtype=float), values, side="right")
    index[np.isnan(values)] = len(edges) + 1
    return index


def _shares(index: np.ndarray, n_buckets: int) -> list[float]:
    counts = np.bincount(index, minlength=n_buckets)[:n_buckets]
    total = max(int(counts.sum()), 1)
    return [round(float(c) / total, 6) for c in counts]


def _numeric_profile(values: np.ndarray) -> dict:
    present = values[~np.isnan(values)]
    missing = 1 - len(present) / max(len(values), 1)
    if not len(present):
        return {"kind": "numeric", "n": 0, "missing": round(missing, 6)}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1])).tolist()
    lo, hi = float(present.min()), float(present.max())
    # A constant field: any other value is outside it by at least its own size (or 1).
    span = (hi - lo) or max(abs(hi), 1.0)
    return {
        "kind": "numeric",
        "n": len(present),
        "min": lo,
        "max": hi,
        "low": lo - RANGE_TOLERANCE * span,
        "high": hi + RANGE_TOLERANCE * span,
        "missing": round(missing, 6),
        "edges": edges,
        # One share per bin, then the share of missing values, over `rows` rows.
        "shares": _shares(_binned(values, edges), len(edges) + 2),
        "rows": len(values),
    }


def _categorical_profile(values, held_out) -> dict:
    present = [v for v in values if v != ""]
    missing = 1 - len(present) / max(len(values), 1)
    counts: dict[str, int] = {}
    for v in present:
        counts[v] = counts.get(v, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    top = [k for k, _ in ranked[:TOP_CATEGORIES]]
    held = [v for v in held_out if v != ""]
    unseen = sum(1 for v in held if v not in counts) / len(held) if held else 0.0
    closed = unseen <= OPEN_FIELD_SHARE and len(counts) <= MAX_KNOWN
    return {
        "kind": "categorical",
        "n": len(present),
        "missing": round(missing, 6),
        "top": top,
        # One share per top value, then "any other value", then missing.
        "shares": _shares(category_buckets(values, top), len(top) + 2),
        "rows": len(values),
        "distinct": len(counts),
        "unseen_held_out": round(unseen, 6),
        "closed": closed,
        "known": sorted(counts) if closed else None,
    }


def category_buckets(values, top: list[str]) -> np.ndarray:
    """Bucket per value: its place among the top values, len(top) for any other value,
    len(top) + 1 for missing."""
    place = {v: i for i, v in enumerate(top)}
    other, missing = len(top), len(top) + 1
    return np.fromiter(
        (missing if v == "" else place.get(v, other) for v in values),
        dtype=np.int64,
        count=len(values),
    )


def build_profile(x_train, x_held_out, columns: list[dict], model) -> dict:
    """The profile of the training rows (x_train, a features.table() array); held-out rows
    tell which categorical fields are open to new values."""
    vectorizers = text_vectorizers(model, columns)
    features = {}
    for j, c in enumerate(columns):
        name, kind = c["name"], c["kind"]
        if kind == "numeric":
            features[name] = _numeric_profile(_numbers(x_train[:, j]))
        elif kind == "categorical":
            features[name] = _categorical_profile(list(x_train[:, j]), list(x_held_out[:, j]))
        elif kind == "text" and name in vectorizers:
            # Splitting words is the slow part: every k-th row is plenty for deciles.
            step = max(1, len(x_train) // TEXT_ROWS)
            share = known_word_share(list(x_train[::step, j]), vectorizers[name])
            prof = _numeric_profile(share)
            features[name] = {
                "kind": "text",
                "n": prof["n"],
                "missing": prof["missing"],
                "measure": "share of words the model knows",
                "vocabulary": len(vectorizers[name].vocabulary_),
                "edges": prof.get("edges", []),
                "shares": prof.get("shares", [0.0, 1.0]),
                "rows": len(share),
            }
    return {"version": PROFILE_VERSION, "n": len(x_train), "features": features}


def buckets(profile_feature: dict, column, vectorizer=None) -> np.ndarray:
    """Each value's bucket in the feature's profile (its bins, then "other", then missing)."""
    if profile_feature["kind"] == "categorical":
        return category_buckets(list(column), profile_feature["top"])
    text = profile_feature["kind"] == "text"
    values = known_word_share(list(column), vectorizer) if text else _numbers(column)
    return _binned(values, profile_feature.get("edges", []))


def bucket_shares(profile_feature: dict, column, vectorizer=None) -> list[float]:
    """The shares of recent values in the feature's buckets, in the profile's order."""
    return _shares(buckets(profile_feature, column, vectorizer), len(profile_feature["shares"]))


def in_crowded_buckets(
    profile: dict | None, columns: list[dict], x, crowded: dict[str, dict], vectorizers: dict
) -> list[list[dict]]:
    """Per row of x, the drifted features (`crowded`: {name: {"buckets", "psi"}}, from the
    queue's drift report) whose value falls in a bucket recent items fill far more often than
    the training rows did."""
    hits: list[list[dict]] = [[] for _ in range(len(x))]
    features = (profile or {}).get("features", {})
    for j, c in enumerate(columns):
        held, prof = crowded.get(c["name"]), features.get(c["name"])
        if not held or prof is None or "shares" not in prof:
            continue
        if prof["kind"] == "text" and c["name"] not in vectorizers:
            continue
        where = buckets(prof, x[:, j], vectorizers.get(c["name"]))
        for i in np.flatnonzero(np.isin(where, list(held["buckets"]))):
            value = x[i, j]
            shown = number(value) if isinstance(value, float) and value == value else repr(value)
            hits[i].append(
                {
                    "field": c["name"],
                    "check": "drift",
                    "reason": f"{c['name']} {shown[:40]} lies where recent items crowd far more "
                    f"than the model's training data (drift alarm on {c['name']}, "
                    f"PSI {held['psi']:.2f})",
                }
            )
    return hits


def number(value: float) -> str:
    """A number as a person reads it: 123,400 / 12.5 / 0.0031."""
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.4g}"


def known_values(profile: dict | None) -> dict[str, frozenset]:
    """The known values of each closed categorical field, as sets (built once per loaded
    model)."""
    features = (profile or {}).get("features", {})
    return {
        name: frozenset(f["known"])
        for name, f in features.items()
        if f["kind"] == "categorical" and f.get("known") is not None
    }


def outside_profile(
    profile: dict | None, known: dict[str, frozenset], columns: list[dict], x
) -> list[list[dict]]:
    """Per row of x, the fields outside what the model learned from, each as {"field",
    "check", "reason"}: a number far outside the training range, a number missing where
    training always had one, a value never seen in a field whose values are a closed set
    (`known`, from known_values())."""
    hits: list[list[dict]] = [[] for _ in range(len(x))]
    if not profile:
        return hits
    features = profile.get("features", {})
    for j, c in enumerate(columns):
        prof = features.get(c["name"])
        if prof is None or prof.get("n", 0) == 0:
            continue
        if prof["kind"] == "numeric":
            _check_numbers(c["name"], prof, _numbers(x[:, j]), hits)
        elif prof["kind"] == "categorical":
            _check_categories(c["name"], prof, known.get(c["name"]), x[:, j], hits)
    return hits


def _check_numbers(name: str, prof: dict, values: np.ndarray, hits) -> None:
    with np.errstate(invalid="ignore"):
        outside = (values < prof["low"]) | (values > prof["high"])
    for i in np.flatnonzero(outside):
        hits[i].append(
            {
                "field": name,
                "check": "range",
                "reason": f"{name} {number(values[i])} is far outside what the model learned "
                f"from ({number(prof['min'])}–{number(prof['max'])})",
            }
        )
    if prof["missing"] == 0:
        for i in np.flatnonzero(np.isnan(values)):
            hits[i].append(
                {
                    "field": name,
                    "check": "missing",
                    "reason": f"{name} is missing or not a number, and the model always had one",
                }
            )


def _check_categories(name: str, prof: dict, known: frozenset | None, values, hits) -> None:
    for i, value in enumerate(values):
        if value == "":
            if prof["missing"] == 0:
                hits[i].append(
                    {
                        "field": name,
                        "check": "missing",
                        "reason": f"{name} is missing, and the model always had one",
                    }
                )
        elif known is not None and value not in known:
            shown = value if len(value) <= 40 else value[:37] + "..."
            hits[i].append(
                {
                    "field": name,
                    "check": "category",
                    "reason": f"{name} {shown!r} is a value the model never saw in training",
                }
            )
