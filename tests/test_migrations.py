"""The migrations build the schema the models describe, and can be undone."""

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from app.db import get_engine
from app.settings import PROJECT_ROOT
from tests.test_states import ROWS, STATE_COLUMNS

CLAIM_INDEXES = ("ix_item_claim_order", "ix_item_claim_uncertainty")


def _schema_diff(conn):
    """Differences between the database and the models, except the claim indexes, whose
    `priority DESC` expression SQLite's reflection cannot compare (checked by name instead)."""
    diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    diff = [
        d
        for d in diff
        if not (d[0] in ("add_index", "remove_index") and d[1].name in CLAIM_INDEXES)
    ]
    assert set(CLAIM_INDEXES) <= {ix["name"] for ix in inspect(conn).get_indexes("item")}
    return diff


def test_upgrade_downgrade_upgrade_matches_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")
    with get_engine(url).connect() as conn:
        assert _schema_diff(conn) == []


def test_test_database_was_built_by_migrations(engine):
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is not None
        assert _schema_diff(conn) == []


def test_sqlite_tables_rebuilt_with_rows_pointing_at_them_keep_rows_and_indexes(tmp_path):
    """SQLite's batch mode rebuilds a table to add a CHECK constraint: with rows in the
    tables that point at it (foreign keys), and with the claim index's `priority DESC`."""
    url = f"sqlite:///{tmp_path / 'rows.db'}"
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    command.upgrade(cfg, "0005")
    with get_engine(url).begin() as conn:
        for row in ROWS:
            conn.execute(text(row), {"t": "2026-01-01 00:00:00"})
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "0005")
    command.upgrade(cfg, "head")
    with get_engine(url).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        for table in ("item", "claim", "final_label", "outbox", "training_example"):
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() == 1
        for name in CLAIM_INDEXES:
            index = conn.exec_driver_sql(
                f"SELECT sql FROM sqlite_master WHERE name = '{name}'"
            ).scalar()
            assert "priority DESC" in index
        assert _schema_diff(conn) == []


def test_this_databases_newest_migrations_downgrade_and_upgrade_again(app, engine):
    """On the suite's database (SQLite or PostgreSQL): the revisions since 0005 go down and
    up again, and the schema still matches the models."""
    from tests.conftest import DATABASE_URL

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = DATABASE_URL
    command.downgrade(cfg, "0005")
    try:
        with engine.connect() as conn:
            assert "ck_item_status" not in {
                c["name"] for c in inspect(conn).get_check_constraints("item")
            }
    finally:
        command.upgrade(cfg, "head")
    with engine.connect() as conn:
        for model, column, _enum in STATE_COLUMNS:
            table = model.__tablename__
            checks = {c["name"] for c in inspect(conn).get_check_constraints(table)}
            assert f"ck_{table}_{column}" in checks, table
        assert _schema_diff(conn) == []


def test_0013_ranks_the_items_waiting_at_the_upgrade(tmp_path):
    """Waiting items get their place in the uncertainty order from their newest prediction;
    items without scores, and decided ones, stay unranked."""
    from app.models import UNRANKED
    from app.queues.order import rank_of

    url = f"sqlite:///{tmp_path / 'rank.db'}"
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    command.upgrade(cfg, "0008")
    old = '[{"label": "a", "score": 0.9}, {"label": "b", "score": 0.1}]'
    new = '[{"label": "a", "score": 0.51}, {"label": "b", "score": 0.49}]'
    rule = '[{"label": "a", "score": null}]'
    with get_engine(url).begin() as conn:
        conn.execute(text(ROWS[1]), {"t": "2026-01-01 00:00:00"})
        for n, (ext, status) in enumerate(
            [("waiting", "pending"), ("held", "in_review"), ("ruled", "pending"), ("done", "done")]
        ):
            conn.execute(
                text(
                    "INSERT INTO item (id, queue_id, external_id, payload, status, priority,"
                    " created_at) VALUES (:id, 1, :ext, '{}', :status, 0, :t)"
                ),
                {"id": n + 1, "ext": ext, "status": status, "t": "2026-01-01 00:00:00"},
            )
        predictions = [(1, old), (1, new), (2, new), (3, rule), (4, new)]
        for n, (item_id, cands) in enumerate(predictions):
            conn.execute(
                text(
                    "INSERT INTO prediction (id, item_id, source, candidates, created_at)"
                    " VALUES (:id, :item, 'producer', :c, :t)"
                ),
                {"id": n + 1, "item": item_id, "c": cands, "t": "2026-01-01 00:00:00"},
            )
    command.upgrade(cfg, "head")
    with get_engine(url).connect() as conn:
        ranks = dict(conn.execute(text("SELECT external_id, uncertainty_rank FROM item")).all())
    lowest = rank_of(
        [{"label": "a", "score": 0.51}, {"label": "b", "score": 0.49}], None, "waiting"
    )
    assert ranks["waiting"] == lowest < 1 << 24  # the newest prediction's margin, 0.02
    assert ranks["held"] < 1 << 24
    assert ranks["ruled"] == ranks["done"] == UNRANKED
