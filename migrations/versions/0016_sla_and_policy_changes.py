"""service levels and policy history: the claim's deadline index, and `policy_change`

A queue's `sla_hours` puts items nearing their deadline (arrival + sla_hours) before the
queue's order; the claim finds the oldest of them with one probe of
`ix_item_claim_deadline` (app.queues.sla, app.review.service). `policy_change` records who
changed which policy fields of a queue, when, with their values before and after.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 21:40:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

from app.models import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_item_claim_deadline", "item", ["queue_id", "status", "priority", "created_at", "id"]
    )
    op.create_table(
        "policy_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("via", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column(
            "changes", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["queue_id"], ["review_queue.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["user_account.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_policy_change_queue", "policy_change", ["queue_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_policy_change_queue", table_name="policy_change")
    op.drop_table("policy_change")
    op.drop_index("ix_item_claim_deadline", table_name="item")
