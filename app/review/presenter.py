"""The review page's presenter: what the reviewer reads of an item (payload fields in domain
terms, candidates in plain words, the evidence behind the top answer), as plain dataclasses
the templates render."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import urlsplit

from app.learning.explain import contributions, similar_items
from app.learning.scoring import pipeline_for_version
from app.models import Item, Prediction, Queue, id_of
from app.review import plain_words
from app.review.actions import flags_of
from app.review.service import current_prediction

SAFE_URL_SCHEMES = {"http", "https"}
LONG_TEXT = 80
MAX_CANDIDATE_KEYS = 9


@dataclass
class FieldView:
    name: str
    label: str
    text: str
    kind: str  # num, text, longtext, url, image_url, pixels, category
    unit: str = ""
    pixels: list = field(default_factory=list)
    highlights: list = field(default_factory=list)  # (chunk, marked) pairs for longtext


def _number(value, fmt: str, unit: str) -> tuple[str, str]:
    if fmt == "money":
        return f"{value:,.2f}", unit
    if fmt == "percent":
        return f"{value * 100 if abs(value) <= 1 else value:.1f}", "%"
    if fmt == "int" or isinstance(value, int):
        return f"{value:,.0f}", unit
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.2f}", unit


def _date(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    except ValueError:
        return value
    return parsed.strftime("%-d %b %Y") if isinstance(parsed, date) else value


def _is_pixels(value) -> bool:
    return (
        isinstance(value, list)
        and 0 < len(value) <= 64
        and all(isinstance(r, list) and 0 < len(r) <= 64 for r in value)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for r in value for v in r)
    )


def _pixels(value) -> list[list[int]]:
    """Grey levels 0..255 from 0..1 or 0..255 (or any range) numbers."""
    flat = [v for r in value for v in r]
    lo, hi = min(flat), max(flat)
    span = (hi - lo) or 1
    return [[int(round(255 * (v - lo) / span)) for v in r] for r in value]


def _highlight(text: str, words: set[str]) -> list[tuple[str, bool]]:
    """Splits text into chunks, marking the words the model leaned on."""
    if not words:
        return [(text, False)]
    out, last = [], 0
    for m in re.finditer(r"[A-Za-z0-9]+", text):
        if m.group(0).lower() in words:
            if m.start() > last:
                out.append((text[last : m.start()], False))
            out.append((m.group(0), True))
            last = m.end()
    out.append((text[last:], False))
    return out


def present_field(
    name: str, value, spec: dict, image_hosts: set[str], marked: set[str]
) -> FieldView:
    """One payload field, formatted as the queue's display spec says (or guessed)."""
    label = spec.get("label") or str(name).replace("_", " ").capitalize()
    fmt, unit = spec.get("format", ""), spec.get("unit", "")
    if isinstance(value, bool):
        return FieldView(name, label, "yes" if value else "no", "category")
    if isinstance(value, int | float):
        text, unit = _number(value, fmt, unit)
        return FieldView(name, label, text, "num", unit)
    if _is_pixels(value):
        return FieldView(
            name, label, f"{len(value)}×{len(value[0])} image", "pixels", pixels=_pixels(value)
        )
    if isinstance(value, str):
        parts = urlsplit(value)
        if parts.scheme in SAFE_URL_SCHEMES and parts.netloc:
            if fmt == "image" and parts.hostname in image_hosts:
                return FieldView(name, label, value, "image_url")
            return FieldView(name, label, value, "url")
        if fmt == "date":
            return FieldView(name, label, _date(value), "text")
        if fmt == "text" or len(value) > LONG_TEXT:
            return FieldView(name, label, value, "longtext", highlights=_highlight(value, marked))
        return FieldView(name, label, value, "category" if fmt == "category" else "text", unit)
    return FieldView(name, label, json.dumps(value, ensure_ascii=False)[:2000], "text")


def _evidence_sentence(c, payload: dict, specs: dict) -> str:
    spec = specs.get(c.field, {})
    label = spec.get("label") or c.field.replace("_", " ").capitalize()
    if c.kind == "word":
        return f"{label} mentions “{c.value}”"
    if c.kind == "category":
        return f"{label} is {c.value}"
    value = payload.get(c.field)
    if isinstance(value, int | float) and not isinstance(value, bool):
        text, unit = _number(value, spec.get("format", ""), spec.get("unit", ""))
        return f"{label} {text}{' ' + unit if unit else ''}"
    return f"{label}"


def _strength(weight: float, strongest: float) -> str:
    share = abs(weight) / strongest if strongest else 0
    if share >= 0.6:
        return "strongly"
    if share >= 0.25:
        return "somewhat"
    return "slightly"


def _evidence(ev: dict | None, payload: dict, specs: dict) -> tuple[list[dict], list[dict]]:
    """(towards, against): each value's sentence, how hard it pushed in words, and a bar as
    a share of the strongest push. Only values the item has: a field it lacks, filled in for
    the model, is not evidence about this item."""
    if not ev:
        return [], []

    def present(c) -> bool:
        return c.field in payload and payload[c.field] not in (None, "")

    shown = {k: [c for c in ev[k] if present(c)] for k in ("towards", "against")}
    strongest = max((abs(c.weight) for k in shown for c in shown[k]), default=0.0)
    rows = {
        k: [
            {
                "text": _evidence_sentence(c, payload, specs),
                "strength": _strength(c.weight, strongest),
                "pct": max(4, round(100 * abs(c.weight) / strongest)) if strongest else 0,
            }
            for c in cs
        ]
        for k, cs in shown.items()
    }
    return rows["towards"], rows["against"]


@dataclass
class ItemView:
    external_id: str
    status: str
    fields: list[FieldView]
    candidates: list[dict]
    answer_note: str | None
    more_labels: list[str]
    model_version: str | None
    why: str | None  # why a person sees it, in plain words
    route_decision: str | None
    towards: list[dict]  # {"text", "strength", "pct"}
    against: list[dict]
    top_label: str | None
    flags: list[str]
    similar: list[dict]


def present_item(
    item: Item,
    prediction: Prediction | None,
    *,
    queue: Queue,
    pipeline=None,
    flags: list[str] | None = None,
    similar: list[dict] | None = None,
) -> ItemView:
    """Everything the review page shows for one item."""
    display = queue.display or {}
    specs = {f["name"]: f for f in display.get("fields", []) if isinstance(f, dict) and "name" in f}
    image_hosts = set(display.get("image_hosts", []))
    cands = prediction.candidates if prediction else []
    top = cands[0]["label"] if cands else None
    ev = contributions(pipeline, item.payload, top) if pipeline is not None and top else None
    marked = {str(c.value) for c in ev["towards"] if c.kind == "word"} if ev else set()

    order = [n for n in specs if n in item.payload] + [n for n in item.payload if n not in specs]
    fields = [
        present_field(n, item.payload[n], specs.get(n, {}), image_hosts, marked) for n in order
    ]
    candidates = []
    detail = (prediction.detail if prediction else None) or {}
    noun = display.get("noun") or "item"
    calibrated = prediction is not None and prediction.source == "model"
    for n, cand in enumerate(cands[:MAX_CANDIDATE_KEYS], 1):
        score = cand.get("score")  # a business rule's answer has none
        candidates.append(
            {
                "key": n,
                "label": cand["label"],
                "pct": None if score is None else round(float(score) * 100),
                "figure": plain_words.candidate_figure(
                    None if score is None else float(score),
                    calibrated=calibrated,
                    noun=noun,
                    unseen=bool(cand.get("unseen")),
                ),
                "unseen": bool(cand.get("unseen")),
            }
        )
    shown = {c["label"] for c in candidates}
    more = [lab for lab in (queue.labels or []) if lab not in shown]
    towards, against = _evidence(ev, item.payload, specs)
    return ItemView(
        external_id=item.external_id,
        status=item.status,
        fields=fields,
        candidates=candidates,
        answer_note=plain_words.answer_note(detail, shown=len(candidates), noun=noun),
        more_labels=more,
        model_version=prediction.model_version if prediction else None,
        why=plain_words.why_you_see_this(item.route_reason, item.route_decision),
        route_decision=item.route_decision,
        towards=towards,
        against=against,
        top_label=top,
        flags=flags or [],
        similar=similar or [],
    )


def present_for_review(*, session, queue: Queue, item: Item) -> ItemView:
    """The item with its prediction, the evidence from the model that made it (when that
    model is one of the queue's own), similar labelled items and flags."""
    prediction = current_prediction(session=session, item_id=id_of(item))
    version_id, pipeline = pipeline_for_version(
        session=session, queue=queue, version=prediction.model_version if prediction else None
    )
    similar = (
        similar_items(
            session=session,
            queue_id=id_of(queue),
            version_id=version_id,
            pipeline=pipeline,
            payload=item.payload,
            exclude_item_id=item.id,
        )
        if pipeline is not None
        else []
    )
    return present_item(
        item,
        prediction,
        queue=queue,
        pipeline=pipeline,
        flags=flags_of(session=session, item_id=id_of(item)),
        similar=similar,
    )


def present_preview(*, session, queue: Queue, item: Item) -> ItemView:
    """A light view of the item leased ahead: fields and candidates, no model work."""
    return present_item(item, current_prediction(session=session, item_id=id_of(item)), queue=queue)
