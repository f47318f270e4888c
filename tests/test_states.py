"""Every stored state is one of its StrEnum's values: in Python, and in the database."""

import importlib.util
import re

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError

from app.db import session_scope
from app.models import Claim, Item, Label, Outbox, TrainingExample, TrainingRun
from app.settings import PROJECT_ROOT
from app.states import (
    ClaimState,
    ItemStatus,
    LabelSource,
    OutboxKind,
    RouteDecision,
    RunStatus,
)

STATE_COLUMNS = [
    (Item, "status", ItemStatus),
    (Item, "route_decision", RouteDecision),
    (Claim, "state", ClaimState),
    (Label, "source", LabelSource),
    (TrainingExample, "source", LabelSource),
    (TrainingRun, "status", RunStatus),
    (Outbox, "kind", OutboxKind),
]

# One row in every table that has a state, each pointing at the ones before it.
ROWS = [
    "INSERT INTO user_account (id, name, role, created_at) VALUES (1, 'u', 'admin', :t)",
    "INSERT INTO review_queue (id, name, description, policy, created_at)"
    " VALUES (1, 'q', '', '{}', :t)",
    "INSERT INTO item (id, queue_id, external_id, payload, status, priority, route_decision,"
    " created_at) VALUES (1, 1, 'a', '{}', 'done', 0, 'review', :t)",
    "INSERT INTO claim (id, token, item_id, user_id, state, created_at, expires_at)"
    " VALUES (1, 't', 1, 1, 'decided', :t, :t)",
    "INSERT INTO final_label (id, item_id, queue_id, value, source, reviewers, decided_at)"
    " VALUES (1, 1, 1, 'x', 'human', '[]', :t)",
    "INSERT INTO outbox (id, kind, label_id, queue_id, created_at, attempts)"
    " VALUES (1, 'training_example', 1, 1, :t, 1)",
    "INSERT INTO training_example (id, queue_id, label_id, item_id, features, target, source,"
    " decided_at, created_at) VALUES (1, 1, 1, 1, '{}', 'x', 'human', :t, :t)",
    "INSERT INTO training_run (id, queue_id, trigger, status, started_at)"
    " VALUES (1, 1, 'test', 'running', :t)",
]


def _accepts(conn, table: str, column: str, value: str) -> bool:
    savepoint = conn.begin_nested()
    try:
        conn.execute(text(f"UPDATE {table} SET {column} = :v"), {"v": value})
    except IntegrityError:
        savepoint.rollback()
        return False
    savepoint.rollback()
    return True


def test_the_database_takes_every_state_and_refuses_anything_else(app, engine):
    with engine.connect() as conn:
        conn.begin()
        for row in ROWS:
            conn.execute(text(row), {"t": "2026-01-01 00:00:00"})
        for model, column, enum in STATE_COLUMNS:
            table = model.__tablename__
            for member in enum:
                assert _accepts(conn, table, column, member.value), (table, column, member)
            assert not _accepts(conn, table, column, "bogus"), (table, column)
            assert not _accepts(conn, table, column, "auto-accept"), (table, column)
        conn.rollback()


def test_the_models_refuse_an_unknown_state_before_the_database_does(app, engine, make):
    make.queue()
    with pytest.raises(StatementError, match="is not a valid ItemStatus"):
        with session_scope(engine) as s:
            s.add(Item(queue_id=1, external_id="x", status="accepted"))


def test_states_come_back_as_their_enum_members(app, engine, make):
    make.queue()
    with session_scope(engine) as s:
        s.add(Item(queue_id=1, external_id="x", route_decision=RouteDecision.REVIEW))
    with session_scope(engine, write=False) as s:
        item = s.scalar(select(Item))
    assert item.status is ItemStatus.PENDING and item.status == "pending"
    assert item.route_decision is RouteDecision.REVIEW


def _migration(path):
    spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_migration_lists_the_values_the_enums_have():
    """The migration writes its lists out (a migration must not change with the code); a
    value added to an enum needs a migration of its own."""
    versions = PROJECT_ROOT / "migrations" / "versions"
    module = _migration(next(versions.glob("0006_*.py")))
    lists = {
        (table, column): values
        for table, checks in module.CHECKS.items()
        for _name, column, values in checks
    }
    # Later migrations that change a list say so in CHECKS_AFTER {(table, column): values}.
    for path in sorted(versions.glob("*.py")):
        lists.update(getattr(_migration(path), "CHECKS_AFTER", {}))
    assert lists == {
        (model.__tablename__, column): tuple(enum) for model, column, enum in STATE_COLUMNS
    }


def test_auto_accept_is_spelled_one_way():
    """Prose says "auto-accept(ed)"; code uses the contract's values (route `auto_accept`,
    status `auto_accepted`, source `auto`) and the policy's `auto_accept_threshold`."""
    other = re.compile(r"auto ?accept", re.IGNORECASE)  # run together, or two words
    files = [
        path
        for folder in ("app", "workers", "templates", "docs", "bench", "migrations", "tests")
        for path in (PROJECT_ROOT / folder).rglob("*")
        if path.suffix in (".py", ".html", ".js", ".css", ".md") and "vendor" not in path.parts
    ]
    found = [
        f"{path.relative_to(PROJECT_ROOT)}:{n}: {line.strip()}"
        for path in [*files, PROJECT_ROOT / "README.md"]
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if other.search(line)
    ]
    assert found == []
