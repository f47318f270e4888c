"""The migrations build the schema the models describe, and can be undone."""

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from app.db import get_engine
from app.settings import PROJECT_ROOT


def _schema_diff(conn):
    """Differences between the database and the models, except the claim index, whose
    `priority DESC` expression SQLite's reflection cannot compare (checked by name instead)."""
    diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    diff = [
        d
        for d in diff
        if not (d[0] in ("add_index", "remove_index") and d[1].name == "ix_item_claim_order")
    ]
    assert "ix_item_claim_order" in {ix["name"] for ix in inspect(conn).get_indexes("item")}
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
