"""What the reviewer reads: payload fields and candidates in plain words."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from app.models import Item, Prediction

SAFE_URL_SCHEMES = {"http", "https"}


def confidence_words(score: float) -> str:
    """A score in words a case worker can act on."""
    if score >= 0.9:
        return "very likely"
    if score >= 0.7:
        return "likely"
    if score >= 0.4:
        return "uncertain"
    return "unlikely"


def display_value(value) -> tuple[str, str]:
    """The value as text and a kind the template styles ("num", "url", "text")."""
    if isinstance(value, bool):
        return ("yes" if value else "no"), "text"
    if isinstance(value, int):
        return f"{value:,}", "num"
    if isinstance(value, float):
        return f"{value:,.2f}", "num"
    if isinstance(value, str):
        parts = urlsplit(value)
        if parts.scheme in SAFE_URL_SCHEMES and parts.netloc:
            return value, "url"
        return value, "text"
    import json

    return json.dumps(value, ensure_ascii=False)[:2000], "text"


@dataclass
class ItemView:
    external_id: str
    fields: list[tuple[str, str, str]]
    candidates: list[dict]
    model_version: str | None
    route_reason: str | None
    route_decision: str | None


def item_view(item: Item, prediction: Prediction | None) -> ItemView:
    fields = [(str(k).replace("_", " "), *display_value(v)) for k, v in item.payload.items()]
    candidates = []
    for n, cand in enumerate((prediction.candidates if prediction else [])[:9], 1):
        score = float(cand["score"])
        candidates.append(
            {
                "key": n,
                "label": cand["label"],
                "pct": round(score * 100),
                "words": confidence_words(score),
            }
        )
    return ItemView(
        external_id=item.external_id,
        fields=fields,
        candidates=candidates,
        model_version=prediction.model_version if prediction else None,
        route_reason=item.route_reason,
        route_decision=item.route_decision,
    )
