"""audited precision and alarms: the items auto-accept was eligible for, the queue's events

`audit_frame` (the sampling frame of audits) holds every item the model's answer would have
auto-accepted, with its confidence band and the chance that a person answers it anyway (the
audit rate, or 1 while auto-accept is paused): the population and the sample of the
audited-precision estimate. `queue_event` records alarms raised and cleared, auto-accept
paused and resumed, with who, when and why.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 19:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

from app.models import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Written out: a migration must not change when the enum does.
EVENT_KINDS = ("alarm_raised", "alarm_cleared", "auto_accept_paused", "auto_accept_resumed")


def upgrade() -> None:
    op.create_table(
        "audit_frame",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("model_version", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("answer", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("band", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("sample_rate", sa.Float(), nullable=False),
        sa.Column("to_person", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["item.id"]),
        sa.ForeignKeyConstraint(["queue_id"], ["review_queue.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id"),
    )
    with op.batch_alter_table("audit_frame") as batch_op:
        batch_op.create_index(
            "ix_audit_frame_scope", ["queue_id", "model_version", "band"], unique=False
        )
    kinds = ", ".join(f"'{k}'" for k in EVENT_KINDS)
    op.create_table(
        "queue_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("alarm", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(f"kind IN ({kinds})", name="ck_queue_event_kind"),
        sa.ForeignKeyConstraint(["queue_id"], ["review_queue.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("queue_event") as batch_op:
        batch_op.create_index("ix_queue_event_queue_kind", ["queue_id", "kind", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("queue_event") as batch_op:
        batch_op.drop_index("ix_queue_event_queue_kind")
    op.drop_table("queue_event")
    with op.batch_alter_table("audit_frame") as batch_op:
        batch_op.drop_index("ix_audit_frame_scope")
    op.drop_table("audit_frame")
