"""uncertainty order: item.uncertainty_rank and the claim index that follows it

A queue whose policy says `order: uncertainty` claims the least sure model answers first
(app.queues.order); the rank is stored on the item so the claim stays one index probe.
Existing items start unranked (after every ranked one) until they are scored again.

Revision ID: 0013
Revises: 0008
Create Date: 2026-12-01 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0008"
branch_labels = None
depends_on = None

UNRANKED = 2**31 - 1


def upgrade() -> None:
    with op.batch_alter_table("item") as batch_op:
        batch_op.add_column(
            sa.Column(
                "uncertainty_rank",
                sa.Integer(),
                nullable=False,
                server_default=str(UNRANKED),
            )
        )
    op.create_index(
        "ix_item_claim_uncertainty",
        "item",
        ["queue_id", "status", sa.text("priority DESC"), "uncertainty_rank", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_item_claim_uncertainty", table_name="item")
    with op.batch_alter_table("item") as batch_op:
        batch_op.drop_column("uncertainty_rank")
