"""Database engine and sessions: one code path for SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic_core import to_json
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

from app.settings import ALEMBIC_INI, current_settings

_engines: dict[str, Engine] = {}


def upgrade_database(url: str | None = None) -> None:
    """Runs every Alembic migration up to head (on the configured database by default)."""
    # Alembic is loaded only by the processes that migrate.
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(ALEMBIC_INI))
    cfg.attributes["database_url"] = url or current_settings().resolved_database_url()
    command.upgrade(cfg, "head")


def dumps_json(value) -> str:
    """JSON for the database, via pydantic-core (several times faster than json.dumps)."""
    return to_json(value).decode()


def is_sqlite(engine_or_session) -> bool:
    """True when the session or engine talks to SQLite."""
    bind = (
        engine_or_session.get_bind()
        if isinstance(engine_or_session, Session)
        else engine_or_session
    )
    return bind.dialect.name == "sqlite"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _begin).
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        # Writers take the write lock up front: a deferred transaction that upgrades
        # to a writer later fails at once with SQLITE_BUSY instead of waiting.
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def get_engine(url: str) -> Engine:
    """One engine per URL per process (re-created lazily after a fork)."""
    engine = _engines.get(url)
    if engine is not None:
        return engine
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            json_serializer=dumps_json,
        )
        _configure_sqlite(engine)
    else:
        engine = create_engine(
            url, pool_pre_ping=True, pool_size=10, max_overflow=20, json_serializer=dumps_json
        )
    _engines[url] = engine
    return engine


def _forget_engines_in_child() -> None:
    # A forked RQ work-horse must not reuse the parent's pooled sockets.
    for engine in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_engines_in_child)


def dispose_all() -> None:
    """Close every pooled connection (tests, shutdown)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


def new_session(engine: Engine, *, write: bool = False) -> Session:
    """A session; `write=True` makes SQLite transactions BEGIN IMMEDIATE."""
    bind = engine.execution_options(sqlite_immediate=True) if write else engine
    return Session(bind, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine, *, write: bool = True) -> Iterator[Session]:
    """A session for a job or a command: commits on success, rolls back on error."""
    session = new_session(engine, write=write)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
