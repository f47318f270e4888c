"""Extensions created once here and bound to the app in the factory."""

from __future__ import annotations

from flask import current_app, g
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from redis import Redis
from spectree import SecurityScheme, SpecTree
from spectree.models import SecureType, SecuritySchemeData
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.db import new_session

login_manager = LoginManager()
csrf = CSRFProtect()
openapi = SpecTree(
    "flask",
    title="Loupe API",
    version="1",
    # Served at /api/openapi.json by the ops blueprint; spectree's own path would hide /api/*.
    path="apidoc",
    filename="openapi.json",
    mode="strict",
    page_templates={},
    security_schemes=[
        SecurityScheme(
            name="bearer", data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer")
        )
    ],
    security={"bearer": []},
)


def db_engine() -> Engine:
    """The app's engine, for a session that outlives the request's (a streamed answer)."""
    return current_app.extensions["loupe.engine"]


def db_session() -> Session:
    """The request's session, opened on first use, reading until `write_session()`."""
    if "db_session" not in g:
        g.db_session = new_session(db_engine())
    return g.db_session


def write_session() -> Session:
    """The request's session, now in a transaction that may write.

    Called by a view right before its domain write, after the slow parts (reading and
    validating the body, hashing passwords): on SQLite the write lock is taken here
    (BEGIN IMMEDIATE), so it is held only as long as the write itself. Whatever the
    session read before is kept; only its read transaction ends.
    """
    session = db_session()
    session.commit()
    session.connection(execution_options={"sqlite_immediate": True})
    return session


def close_db_session(_exc=None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def redis_conn() -> Redis:
    """The app's Redis connection (work queue only: never the only copy of a decision)."""
    return current_app.extensions["loupe.redis"]
