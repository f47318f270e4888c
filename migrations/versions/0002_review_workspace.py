"""review workspace: item events, model feedback, queue display, training use

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 20:31:11
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

from app.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "item_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("comment", sqlmodel.sql.sqltypes.AutoString(length=5000), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["item.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("item_event") as batch_op:
        batch_op.create_index("ix_item_event_item_id", ["item_id"], unique=False)
        batch_op.create_index("ix_item_event_user_time", ["user_id", "created_at"], unique=False)
    with op.batch_alter_table("final_label") as batch_op:
        batch_op.add_column(
            sa.Column("model_feedback", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True)
        )
    with op.batch_alter_table("review") as batch_op:
        batch_op.add_column(
            sa.Column("model_feedback", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True)
        )
    with op.batch_alter_table("review_queue") as batch_op:
        batch_op.add_column(sa.Column("display", JSONType, nullable=True))
    with op.batch_alter_table("training_example") as batch_op:
        batch_op.add_column(sa.Column("used_by_version_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_training_example_used_by_version", "model_version", ["used_by_version_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("training_example") as batch_op:
        batch_op.drop_constraint("fk_training_example_used_by_version", type_="foreignkey")
        batch_op.drop_column("used_by_version_id")
    with op.batch_alter_table("review_queue") as batch_op:
        batch_op.drop_column("display")
    with op.batch_alter_table("review") as batch_op:
        batch_op.drop_column("model_feedback")
    with op.batch_alter_table("final_label") as batch_op:
        batch_op.drop_column("model_feedback")
    op.drop_table("item_event")
