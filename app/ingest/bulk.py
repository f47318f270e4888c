"""Bulk insert of a batch's new items, skipping the external ids the queue already has.

PostgreSQL: COPY into a temporary table, then one INSERT … SELECT … ON CONFLICT DO NOTHING
RETURNING, so duplicates (even from a concurrent producer) are skipped in the server.
SQLite: one compiled INSERT run with executemany inside the BEGIN IMMEDIATE transaction the
caller holds, so no other writer can interleave, and the new ids are read back by range.
Other rows (predictions, labels) go through app.bulk.insert_rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects import sqlite
from sqlmodel import Session, col

from app.bulk import executemany, is_postgres
from app.db import dumps_json
from app.models import Item, table_of

ITEM_COLUMNS = (
    "external_id",
    "payload",
    "status",
    "priority",
    "route_decision",
    "route_reason",
    "uncertainty_rank",
)
_CHUNK = 500


def insert_items(*, session: Session, queue_id: int, rows: list[dict], now: datetime) -> dict:
    """Inserts the rows whose external_id the queue does not have; returns {external_id: id}."""
    if not rows:
        return {}
    if is_postgres(session):
        return _insert_items_postgres(session, queue_id, rows, now)
    return _insert_items_sqlite(session, queue_id, rows, now)


def _insert_items_postgres(session, queue_id, rows, now) -> dict:
    cur = session.connection().connection.driver_connection.cursor()
    cur.execute(
        "CREATE TEMP TABLE IF NOT EXISTS ingest_item (ord int, external_id text, payload jsonb,"
        " status text, priority int, route_decision text, route_reason text,"
        " uncertainty_rank int)"
        " ON COMMIT DELETE ROWS"
    )
    cur.execute("TRUNCATE ingest_item")
    columns = ", ".join(ITEM_COLUMNS)
    with cur.copy(f"COPY ingest_item (ord, {columns}) FROM STDIN") as copy:
        for n, r in enumerate(rows):
            copy.write_row(
                (
                    n,
                    r["external_id"],
                    dumps_json(r["payload"]),
                    r["status"],
                    r["priority"],
                    r["route_decision"],
                    r["route_reason"],
                    r["uncertainty_rank"],
                )
            )
    cur.execute(
        f"INSERT INTO item (queue_id, created_at, {columns})"
        # The producer's order is the items' age order; two overlapping batches sent at the
        # same moment can deadlock on it, which the API answers by retrying the batch.
        f" SELECT %s, %s, {columns} FROM ingest_item ORDER BY ord"
        " ON CONFLICT (queue_id, external_id) DO NOTHING RETURNING external_id, id",
        (queue_id, now),
    )
    return dict(cur.fetchall())


def _insert_items_sqlite(session, queue_id, rows, now) -> dict:
    ids = [r["external_id"] for r in rows]
    existing: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        existing.update(
            session.scalars(
                select(col(Item.external_id)).where(
                    col(Item.queue_id) == queue_id,
                    col(Item.external_id).in_(ids[start : start + _CHUNK]),
                )
            )
        )
    fresh = [
        {**r, "queue_id": queue_id, "created_at": now}
        for r in rows
        if r["external_id"] not in existing
    ]
    if not fresh:
        return {}
    before = session.scalar(select(func.coalesce(func.max(col(Item.id)), 0)))
    # ON CONFLICT only as a guard: under BEGIN IMMEDIATE nobody else can insert meanwhile.
    stmt = sqlite.insert(table_of(Item)).on_conflict_do_nothing(
        index_elements=["queue_id", "external_id"]
    )
    executemany(session, stmt, fresh, ["queue_id", "created_at", *ITEM_COLUMNS])
    return dict(
        session.execute(
            select(col(Item.external_id), col(Item.id)).where(
                col(Item.id) > before, col(Item.queue_id) == queue_id
            )
        ).all()
    )
