"""learning loop: snapshots, training runs, model cards, conformal prediction detail

Training examples now keep the item's payload (the pipeline chooses its own columns),
so existing rows are filled from their items.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 22:40:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

from app.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "training_snapshot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("example_ids", sa.LargeBinary(), nullable=False),
        sa.Column("roles", sa.LargeBinary(), nullable=False),
        sa.Column("sources", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["queue_id"], ["review_queue.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("queue_id", "content_hash", name="uq_snapshot_queue_hash"),
    )
    with op.batch_alter_table("training_snapshot") as batch_op:
        batch_op.create_index("ix_training_snapshot_queue_id", ["queue_id"], unique=False)
    op.create_table(
        "training_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("trigger", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["queue_id"], ["review_queue.id"]),
        sa.ForeignKeyConstraint(["version_id"], ["model_version.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("training_run") as batch_op:
        batch_op.create_index(
            "ix_training_run_queue_started", ["queue_id", "started_at"], unique=False
        )
    with op.batch_alter_table("model_version") as batch_op:
        batch_op.add_column(
            sa.Column(
                "settings_hash",
                sqlmodel.sql.sqltypes.AutoString(length=64),
                nullable=False,
                server_default="",
            )
        )
        batch_op.drop_constraint("uq_model_queue_snapshot", type_="unique")
        batch_op.create_unique_constraint(
            "uq_model_queue_snapshot_settings", ["queue_id", "snapshot", "settings_hash"]
        )
        batch_op.add_column(sa.Column("snapshot_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("card", JSONType, nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(sa.Column("activated_at", UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("activated_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        batch_op.create_foreign_key(
            "fk_model_version_snapshot", "training_snapshot", ["snapshot_id"], ["id"]
        )
    with op.batch_alter_table("model_version") as batch_op:
        batch_op.alter_column("card", server_default=None)
        batch_op.alter_column("settings_hash", server_default=None)
    with op.batch_alter_table("prediction") as batch_op:
        batch_op.add_column(sa.Column("detail", JSONType, nullable=True))
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("model_version_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_outbox_model_version", "model_version", ["model_version_id"], ["id"]
        )
    # The version active today was made active when it was created: roll-back needs that.
    op.execute(
        "UPDATE model_version SET activated_at = created_at, activated_by = 'training run'"
        " WHERE active"
    )
    op.execute(
        "UPDATE training_example SET features ="
        " (SELECT payload FROM item WHERE item.id = training_example.item_id)"
    )


def downgrade() -> None:
    op.execute("DELETE FROM outbox WHERE kind = 'rescore'")
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_constraint("fk_outbox_model_version", type_="foreignkey")
        batch_op.drop_column("model_version_id")
    with op.batch_alter_table("prediction") as batch_op:
        batch_op.drop_column("detail")
    with op.batch_alter_table("model_version") as batch_op:
        batch_op.drop_constraint("fk_model_version_snapshot", type_="foreignkey")
        batch_op.drop_column("activated_by")
        batch_op.drop_column("activated_at")
        batch_op.drop_column("card")
        batch_op.drop_column("snapshot_id")
        batch_op.drop_constraint("uq_model_queue_snapshot_settings", type_="unique")
        batch_op.create_unique_constraint("uq_model_queue_snapshot", ["queue_id", "snapshot"])
        batch_op.drop_column("settings_hash")
    op.drop_table("training_run")
    op.drop_table("training_snapshot")
