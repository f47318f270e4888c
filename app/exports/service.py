"""Streaming label exports as JSONL, CSV or Parquet."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime

from sqlalchemy import select
from sqlmodel import Session, col

from app.errors import ValidationFailed
from app.models import Item, Label, Review, User

FORMATS = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
COLUMNS = [
    "external_id",
    "label",
    "source",
    "reviewers",
    "decided_at",
    "model_version",
    "model_label",
    "model_score",
    "model_feedback",
    "payload",
    "shown",
]
CHUNK_ROWS = 2000


def _shown(session: Session, item_ids: list[int]) -> dict[int, list[dict]]:
    """What each reviewer of these items was shown, per item in review order."""
    out: dict[int, list[dict]] = {i: [] for i in item_ids}
    for item_id, name, shown in session.execute(
        select(col(Review.item_id), col(User.name), col(Review.shown))
        .join(User, col(User.id) == col(Review.user_id))
        .where(col(Review.item_id).in_(item_ids))
        .order_by(col(Review.id))
    ):
        out[item_id].append({"reviewer": name, **(shown or {"prediction_id": None})})
    return out


def label_rows(*, session: Session, queue_id: int, since: datetime | None = None) -> Iterator[dict]:
    """Every final label of the queue, oldest first, fetched in chunks. `shown` lists, per
    review, what its reviewer was shown (prediction id, model version, candidates in their
    order); empty for labels no person gave."""
    chunk: list[dict] = []
    for row in _label_rows(session=session, queue_id=queue_id, since=since):
        chunk.append(row)
        if len(chunk) >= CHUNK_ROWS:
            yield from _with_shown(session, chunk)
            chunk = []
    yield from _with_shown(session, chunk)


def _with_shown(session: Session, rows: list[dict]) -> Iterator[dict]:
    if not rows:
        return
    shown = _shown(session, [r["item_id"] for r in rows])
    for row in rows:
        row["shown"] = shown[row.pop("item_id")]
        yield row


def _label_rows(*, session: Session, queue_id: int, since: datetime | None) -> Iterator[dict]:
    stmt = (
        select(
            col(Item.external_id),
            col(Label.value),
            col(Label.source),
            col(Label.reviewers),
            col(Label.decided_at),
            col(Label.model_version),
            col(Label.model_label),
            col(Label.model_score),
            col(Label.model_feedback),
            col(Item.payload),
            col(Item.id),
        )
        .join(Item, col(Item.id) == col(Label.item_id))
        .where(col(Label.queue_id) == queue_id)
        .order_by(col(Label.decided_at), col(Label.id))
        .execution_options(yield_per=CHUNK_ROWS)
    )
    if since is not None:
        stmt = stmt.where(col(Label.decided_at) >= since)
    for row in session.execute(stmt):
        yield {
            "external_id": row[0],
            "label": row[1],
            "source": row[2],
            "reviewers": row[3] or [],
            "decided_at": row[4].isoformat(),
            "model_version": row[5],
            "model_label": row[6],
            "model_score": row[7],
            "model_feedback": row[8],
            "payload": row[9],
            "item_id": row[10],
        }


def _jsonl(rows: Iterator[dict]) -> Iterator[bytes]:
    buf: list[str] = []
    for row in rows:
        buf.append(json.dumps(row, ensure_ascii=False))
        if len(buf) >= CHUNK_ROWS:
            yield ("\n".join(buf) + "\n").encode()
            buf = []
    if buf:
        yield ("\n".join(buf) + "\n").encode()


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def _cell(value):
    """Text a spreadsheet would run as a formula gets a leading apostrophe (OWASP CSV advice),
    also behind leading spaces, which spreadsheets skip before they look for a formula."""
    if isinstance(value, str) and value.lstrip(" ").startswith(_FORMULA_START):
        return "'" + value
    return value


def _flat(row: dict) -> dict:
    return {
        **row,
        "reviewers": ";".join(row["reviewers"]),
        "payload": json.dumps(row["payload"], ensure_ascii=False),
        "shown": json.dumps(row["shown"], ensure_ascii=False),
    }


def _csv(rows: Iterator[dict]) -> Iterator[bytes]:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for n, row in enumerate(rows, 1):
        writer.writerow({k: _cell(v) for k, v in _flat(row).items()})
        if n % CHUNK_ROWS == 0:
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode()


class _Sink(io.RawIOBase):
    """A write-only file whose bytes are taken out after every row group."""

    def __init__(self):
        self.parts: list[bytes] = []

    def writable(self):
        return True

    def write(self, b):
        self.parts.append(bytes(b))
        return len(b)

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def _parquet(rows: Iterator[dict]) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("external_id", pa.string()),
            ("label", pa.string()),
            ("source", pa.string()),
            ("reviewers", pa.list_(pa.string())),
            ("decided_at", pa.string()),
            ("model_version", pa.string()),
            ("model_label", pa.string()),
            ("model_score", pa.float64()),
            ("model_feedback", pa.string()),
            ("payload", pa.string()),
            ("shown", pa.string()),  # JSON, as payload
        ]
    )
    sink = _Sink()
    writer = pq.ParquetWriter(sink, schema)
    chunk: list[dict] = []

    def flush():
        batch = {c: [r[c] for r in chunk] for c in COLUMNS}
        batch["payload"] = [json.dumps(p, ensure_ascii=False) for p in batch["payload"]]
        batch["shown"] = [json.dumps(p, ensure_ascii=False) for p in batch["shown"]]
        writer.write_table(pa.table(batch, schema=schema))
        chunk.clear()

    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK_ROWS:
            flush()
            yield sink.take()
    if chunk:
        flush()
    writer.close()
    yield sink.take()


def stream_labels(*, session: Session, queue_id: int, fmt: str, since=None) -> Iterator[bytes]:
    """The export body, chunk by chunk; the session stays open until the last chunk."""
    rows = label_rows(session=session, queue_id=queue_id, since=since)
    return {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet}[fmt](rows)


def parse_since(value: str | None) -> datetime | None:
    """The `since` filter of exports and of My work: an ISO 8601 time, UTC when it names no
    zone; 422 for anything else."""
    if not value:
        return None
    try:
        since = datetime.fromisoformat(value.replace("Z", "+00:00"))
        since.astimezone(UTC)  # out-of-range offsets fail here, not mid-stream
        if not 1 < since.year < 9999:
            raise ValueError
    except (ValueError, OverflowError):
        raise ValidationFailed(
            "since must be an ISO 8601 time, for example 2026-11-01T00:00:00Z.",
            [{"field": "since", "message": "not an ISO 8601 time"}],
        ) from None
    return since if since.tzinfo else since.replace(tzinfo=UTC)
