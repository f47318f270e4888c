"""The order claims come in: `arrival` (priority, then age) or `uncertainty` (priority, then
the items the model is least sure about, spread out so a run of claims is not one cluster).

The uncertainty order is stored on the item as one integer, `item.uncertainty_rank`, written
whenever the item's prediction is (ingest, re-scoring), so the claim stays one index probe:

    rank = margin bucket * 2**24 + (hash of the external id mod 2**24)

The margin (top score minus the second) is cut into buckets of 0.05: a claim takes the
lowest bucket first, and inside a bucket a stable hash of the external id decides, which
is a fixed shuffle. Items scored alike (near-duplicates land in the same bucket) are then as
likely to be far apart as any two items of that bucket, instead of next to each other as an
exact margin order would put them. Items without a margin (no scores, a rule's answer) get
UNRANKED and come last. A plain integer rather than a NULL, because SQLite sorts NULLs first
and cannot use an index for `NULLS LAST`.

Ingest, scoring, re-scoring and the benchmark all use these functions, so the
benchmark orders items exactly as the claim statement does.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

from app.models import UNRANKED

BUCKET_WIDTH = 0.05
HASH_BITS = 24
# UNRANKED (2**31 - 1) is larger than any scored item's rank (margins are at most 1: 21
# buckets) and fits a 32-bit INTEGER on every database.

# The claim's ORDER BY for each order; each matches an index on (queue_id, status, …).
ORDER_BY = {
    "arrival": "i.priority DESC, i.id",
    "uncertainty": "i.priority DESC, i.uncertainty_rank, i.id",
}


def margin_of_probabilities(row: Sequence[float]) -> float:
    """Top probability minus the second (the top one alone for a single class)."""
    top = second = 0.0
    for p in row:
        p = float(p)
        if p > top:
            top, second = p, top
        elif p > second:
            second = p
    return top - second


def margin_of(candidates: Sequence[Mapping] | None, detail: Mapping | None = None) -> float | None:
    """The margin of a stored prediction, or None when it has no scores (a rule's answer).

    The model's conformal sets may store the top answer only; their detail carries the
    margin computed on every answer's probability. A producer's single candidate counts
    its own score as the margin (nothing is known about the runner-up).
    """
    if detail and isinstance(detail.get("margin"), int | float):
        return float(detail["margin"])
    scores = sorted(
        (float(c["score"]) for c in candidates or () if isinstance(c.get("score"), int | float)),
        reverse=True,
    )
    scores = [s for s in scores if math.isfinite(s)]
    if not scores:
        return None
    return scores[0] - (scores[1] if len(scores) > 1 else 0.0)


def _spread(key: str) -> int:
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (1 << HASH_BITS)


def uncertainty_rank(margin: float | None, key: str) -> int:
    """The item's place in the uncertainty order (lower is claimed first); `key` is its
    external id, which fixes its place inside its margin bucket."""
    if margin is None or not math.isfinite(margin):
        return UNRANKED
    bucket = int(min(max(margin, 0.0), 1.0) / BUCKET_WIDTH + 1e-9)
    return (bucket << HASH_BITS) + _spread(key)


def rank_of(candidates: Sequence[Mapping] | None, detail: Mapping | None, key: str) -> int:
    """uncertainty_rank of a stored prediction."""
    return uncertainty_rank(margin_of(candidates, detail), key)
