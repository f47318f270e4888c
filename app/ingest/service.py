"""One ingest path for the API and the CLI: validate everything, then store in bulk."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlmodel import Session

from app.bulk import insert_rows
from app.desk.gold import gold_placement, gold_rows
from app.errors import ValidationFailed, pydantic_details
from app.ingest.bulk import insert_items
from app.ingest.schemas import BatchIn, ItemIn, unstorable_values
from app.learning.drift import drift_hold
from app.learning.scoring import score_payloads
from app.models import AuditFrame, GoldItem, Label, Prediction, Queue, id_of, table_of, utcnow
from app.queues.events import paused_reason
from app.queues.order import rank_of
from app.queues.service import policy_of
from app.routing.placement import STATUS_FOR_ROUTE, place, record_rows
from app.routing.rules import rule_fallbacks
from app.states import ItemStatus, RouteDecision

_ITEMS = TypeAdapter(list[ItemIn])
_ONE = TypeAdapter(ItemIn)

_score = itemgetter("score")


def _batch_error(details: list[dict]) -> ValidationFailed:
    rows = sorted({d["index"] for d in details if "index" in d})
    shown = ", ".join(str(r) for r in rows[:10]) + (" …" if len(rows) > 10 else "")
    return ValidationFailed(
        f"{len(rows)} row(s) are invalid (rows {shown}); nothing was stored.",
        details,
    )


_SUSPECT = re.compile(rb"\\u0000|NaN|Infinity|[eE]\+?\d{3}")


def _reject_unstorable(items: list[ItemIn], body: bytes | None = None) -> list[ItemIn]:
    """Rejects NUL characters and non-finite numbers, which PostgreSQL cannot store in JSON.

    JSON can only carry them as `\\u0000`, `NaN`, `Infinity` or a huge exponent: a body
    without any of those needs no walk through every value.
    """
    if body is not None and not _SUSPECT.search(body):
        return items
    details = [
        {"index": index, "field": path, "message": message}
        for index, item in enumerate(items)
        for path, message in unstorable_values(item)
    ]
    if details:
        raise _batch_error(details)
    return items


def parse_json_batch(body: bytes) -> list[ItemIn]:
    """Parses `{"items": [...]}`, listing every bad row."""
    try:
        return _reject_unstorable(BatchIn.model_validate_json(body).items, body)
    except ValidationError as exc:
        details = []
        for err in exc.errors():
            loc = err.get("loc", ())
            if len(loc) >= 2 and loc[0] == "items" and isinstance(loc[1], int):
                details.extend(pydantic_details([{**err, "loc": loc[2:]}], index=loc[1]))
            else:
                details.extend(pydantic_details([err]))
        if all("index" not in d for d in details):
            raise ValidationFailed(
                'The body must be JSON of the form {"items": [ITEM, ...]}.', details
            ) from None
        raise _batch_error(details) from None


def parse_ndjson(body: bytes | str) -> list[ItemIn]:
    """Parses one JSON object per line; blank lines are ignored, rows are numbered by line.

    Lines end at "\\n" only: U+2028 and friends are legal inside JSON strings.
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    lines = [ln.rstrip(b"\r") for ln in body.split(b"\n")]
    filled = [ln for ln in lines if ln.strip()]
    try:
        # Fast path: one validation call for the whole batch; a line holding two objects
        # would add a row, so the count must match.
        items = _ITEMS.validate_json(b"[" + b",".join(filled) + b"]")
        if len(items) == len(filled):
            return _reject_unstorable(items, body)
    except ValidationError:
        pass
    items = []
    details: list[dict] = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            items.append(_ONE.validate_json(line))
        except ValidationError as exc:
            details.extend(pydantic_details(exc.errors(), index=index))
    if details:
        raise _batch_error(details)
    return _reject_unstorable(items, body)


_INT = re.compile(r"^-?(0|[1-9][0-9]*)$")
_FLOAT = re.compile(
    r"^-?(0|[1-9][0-9]*)?\.[0-9]+([eE][-+]?[0-9]{1,2})?$|^-?[1-9][0-9]*[eE][-+]?[0-9]{1,2}$"
)


def _cell(value: str):
    """A CSV cell as a number when it is plainly one; codes like "01234" or "NaN" stay text."""
    if _INT.match(value):
        return int(value)
    if _FLOAT.match(value):
        return float(value)
    return value


def parse_csv(text: str) -> list[ItemIn]:
    """Parses CSV: `external_id`, optional `priority`, `model_version`, `candidates` (JSON),
    `gold_label` (the known answer of a gold item); every other column is a payload field."""
    reader = csv.DictReader(io.StringIO(text))
    rows: list[dict] = []
    details: list[dict] = []
    for index, record in enumerate(reader):
        row: dict = {"external_id": record.pop("external_id", None) or "", "payload": {}}
        if record.get("priority"):
            row["priority"] = record.pop("priority")
        record.pop("priority", None)
        gold_label = record.pop("gold_label", None)
        if gold_label:
            row["gold_label"] = gold_label
        model_version = record.pop("model_version", None)
        candidates = record.pop("candidates", None)
        if candidates:
            try:
                row["prediction"] = {
                    "model_version": model_version or None,
                    "candidates": json.loads(candidates),
                }
            except json.JSONDecodeError:
                details.append(
                    {
                        "index": index,
                        "field": "candidates",
                        "message": "candidates must be a JSON list",
                    }
                )
        row["payload"] = {k: _cell(v) for k, v in record.items() if k is not None and v != ""}
        rows.append(row)
    if details:
        raise _batch_error(details)
    return parse_rows(rows)


def parse_rows(rows: Iterable[dict]) -> list[ItemIn]:
    """Validates already-decoded rows (CLI, tests), listing every bad one."""
    items, details = [], []
    for index, row in enumerate(rows):
        try:
            items.append(_ONE.validate_python(row))
        except ValidationError as exc:
            details.extend(pydantic_details(exc.errors(), index=index))
    if details:
        raise _batch_error(details)
    return _reject_unstorable(items)


def _check_labels(queue: Queue, items: list[ItemIn]) -> None:
    if not queue.labels:
        return
    allowed = set(queue.labels)
    details = []
    for index, item in enumerate(items):
        gold_label = item.get("gold_label")
        if gold_label is not None and gold_label not in allowed:
            details.append(
                {
                    "index": index,
                    "field": "gold_label",
                    "message": f"{gold_label!r} is not one of the queue's labels",
                }
            )
        prediction = item.get("prediction")
        if prediction is None:
            continue
        for c, cand in enumerate(prediction["candidates"]):
            if cand["label"] not in allowed:
                details.append(
                    {
                        "index": index,
                        "field": f"prediction.candidates.{c}.label",
                        "message": f"{cand['label']!r} is not one of the queue's labels",
                    }
                )
    if details:
        raise _batch_error(details)


def score_items(*, session: Session, queue: Queue, items: list[ItemIn]) -> dict[str, tuple]:
    """The queue's answer for each item sent without a prediction, by external id: run
    before the write transaction, so no writer waits while the model scores."""
    todo: dict[str, dict] = {}
    for item in items:
        if item.get("prediction") is None:
            todo.setdefault(item["external_id"], item["payload"])
    if not todo:
        return {}
    payloads = list(todo.values())
    scored = score_payloads(
        session=session,
        queue=queue,
        payloads=payloads,
        crowded=drift_hold(session, queue, payloads),
    )
    rules = (queue.policy or {}).get("rules") or []
    unanswered = payloads[scored.model_answered :]
    rows = scored.rows + rule_fallbacks(rules, unanswered, scored.fallback_reason)
    return dict(zip(todo, rows, strict=True))


def ingest_items(
    *, session: Session, queue: Queue, items: list[ItemIn], now=None, scores=None
) -> dict:
    """Routes and stores a validated batch in bulk; duplicates are counted, not stored.

    `scores` are score_items()'s answers when the caller scored before its write
    transaction; else the items are scored here. The caller commits: the whole batch
    lands or none of it does.
    """
    now = now or utcnow()
    policy = policy_of(queue)
    _check_labels(queue, items)

    # Repeats inside the batch are duplicates too: the first one wins.
    unique: dict[str, ItemIn] = {}
    for item in items:
        unique.setdefault(item["external_id"], item)
    batch = list(unique.values())

    candidates: list[Sequence[Mapping[str, Any]] | None] = []
    versions: list[str | None] = []
    sources: list[str] = []
    details: list[dict | None] = []
    for item in batch:
        prediction = item.get("prediction")
        if prediction is not None:
            candidates.append(sorted(prediction["candidates"], key=_score, reverse=True))
            versions.append(prediction.get("model_version"))
            sources.append("producer")
        else:
            candidates.append(None)
            versions.append(None)
            sources.append("model")
        details.append(None)
    if scores is None:
        scores = score_items(session=session, queue=queue, items=batch)
    for i, item in enumerate(batch):
        if candidates[i] is None:
            candidates[i], versions[i], details[i], sources[i] = scores[item["external_id"]]

    paused = paused_reason(session=session, queue=queue)
    placements = [
        place(
            policy=policy,
            paused=paused,
            queue_name=queue.name,
            external_id=it["external_id"],
            candidates=c,
            detail=d,
        )
        for it, c, d in zip(batch, candidates, details, strict=True)
    ]
    # Gold items (a known answer) are routed to review and never recorded as labels or in
    # the audit frame: app.desk.gold.
    gold: dict[str, str] = {
        it["external_id"]: known for it in batch if (known := it.get("gold_label"))
    }
    placements = [
        gold_placement(p, policy=policy, candidates=c) if it["external_id"] in gold else p
        for it, p, c in zip(batch, placements, candidates, strict=True)
    ]
    rows = [
        {
            "external_id": it["external_id"],
            "payload": it["payload"],
            "status": (
                ItemStatus.GOLD if it["external_id"] in gold else STATUS_FOR_ROUTE[p.route.decision]
            ),
            "priority": it.get("priority", 0),
            "route_decision": p.route.decision,
            "route_reason": p.route.reason,
            "uncertainty_rank": rank_of(c, d, it["external_id"]),
        }
        for it, p, c, d in zip(batch, placements, candidates, details, strict=True)
    ]
    created = insert_items(session=session, queue_id=id_of(queue), rows=rows, now=now)
    insert_rows(
        session=session,
        table=table_of(GoldItem),
        rows=gold_rows(queue_id=id_of(queue), created=created, gold=gold, now=now),
    )

    prediction_rows, label_rows, frame_rows = [], [], []
    # API.md's count keys: the route, but auto-accepted items count under their status.
    routed = {RouteDecision.REVIEW: 0, ItemStatus.AUTO_ACCEPTED: 0, RouteDecision.AUDIT: 0}
    for it, cands, version, source, detail, p in zip(
        batch, candidates, versions, sources, details, placements, strict=True
    ):
        item_id = created.get(it["external_id"])
        if item_id is None:
            continue
        routed[ItemStatus.AUTO_ACCEPTED if p.auto_accepted else p.route.decision] += 1
        if cands is not None:
            prediction_rows.append(
                {
                    "item_id": item_id,
                    "model_version": version,
                    "source": source,
                    "candidates": cands,
                    "detail": detail,
                    "created_at": now,
                }
            )
        frame, label = record_rows(
            p,
            queue_id=id_of(queue),
            item_id=item_id,
            candidates=cands,
            model_version=version,
            policy=policy,
            paused=paused is not None,
            now=now,
        )
        if it["external_id"] in gold:
            continue
        if frame is not None:
            frame_rows.append(frame)
        if label is not None:
            label_rows.append(label)
    insert_rows(
        session=session,
        table=table_of(Prediction),
        rows=prediction_rows,
        json_columns=("candidates", "detail"),
    )
    insert_rows(
        session=session, table=table_of(Label), rows=label_rows, json_columns=("reviewers",)
    )
    insert_rows(session=session, table=table_of(AuditFrame), rows=frame_rows)
    return {
        "received": len(items),
        "created": len(created),
        "duplicates": len(items) - len(created),
        "routed": routed,
    }
