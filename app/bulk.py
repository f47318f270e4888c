"""Bulk inserts of new rows, the fastest safe statement each database has: COPY on
PostgreSQL, one compiled INSERT through the driver's executemany on SQLite.

Shared by ingest (items, predictions, labels) and learning (re-scored predictions).
"""

from __future__ import annotations

from sqlalchemy import insert
from sqlmodel import Session

from app.db import dumps_json
from app.models import UTCDateTime


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _processor(type_, dialect):
    """The column type's bind processor; timestamps are memoised (a batch shares one `now`)."""
    process = type_.bind_processor(dialect)
    if process is None or not isinstance(type_, UTCDateTime):
        return process
    cache: dict = {}

    def memoised(value):
        if value not in cache:
            cache[value] = process(value)
        return cache[value]

    return memoised


def _driver_cursor(session: Session):
    """A cursor on the driver's own connection, inside the session's transaction."""
    driver = session.connection().connection.driver_connection
    if driver is None:  # the pool invalidated the connection under the session
        raise RuntimeError("The database connection was lost during a bulk insert.")
    return driver.cursor()


def executemany(session: Session, stmt, rows: list[dict], columns: list[str]) -> None:
    """Runs one compiled statement over all rows through the driver's executemany.

    Values go through each column type's own bind processor (JSON, timestamps), so they are
    stored exactly as the ORM would store them, without SQLAlchemy's per-row bookkeeping.
    """
    dialect = session.get_bind().dialect
    compiled = stmt.compile(dialect=dialect, column_keys=columns)
    table = stmt.table
    order = [compiled.binds[name].key for name in compiled.positiontup]
    procs = [_processor(table.c[key].type, dialect) for key in order]
    cursor = _driver_cursor(session)
    try:
        cursor.executemany(
            compiled.string,
            [
                tuple(p(r[k]) if p else r[k] for k, p in zip(order, procs, strict=True))
                for r in rows
            ],
        )
    finally:
        cursor.close()


def insert_rows(*, session: Session, table, rows: list[dict], json_columns=()) -> None:
    """Plain bulk insert of new rows (no conflicts possible): COPY or executemany."""
    if not rows:
        return
    columns = list(rows[0])
    if not is_postgres(session):
        executemany(session, insert(table), rows, columns)
        return
    cur = _driver_cursor(session)
    with cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row(
                tuple(
                    dumps_json(r[c]) if c in json_columns and r[c] is not None else r[c]
                    for c in columns
                )
            )
