"""gold items: item status `gold` and the gold_item table

A gold item has a known answer; it is mixed into reviewers' streams to measure their
accuracy and never becomes a label (app.desk.gold). Its item's status is `gold`, so the
claim statement (which takes only `pending` items) never hands it out as a normal item.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 21:30:00
"""

import sqlalchemy as sa
from alembic import op

from app.models import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

BEFORE = ("pending", "in_review", "done", "auto_accepted", "escalated")
AFTER = (*BEFORE, "gold")
# The list this revision leaves, for tests/test_states.py.
CHECKS_AFTER = {("item", "status"): AFTER}


def _in(values: tuple[str, ...]) -> str:
    return f"status IN ({', '.join(repr(v) for v in values)})"


def _restore_claim_indexes() -> None:
    """SQLite's batch mode rebuilds `item` from its reflection, which loses the DESC of the
    claim indexes: build them again as 0001 and 0013 did."""
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_item_claim_order", table_name="item")
        op.create_index(
            "ix_item_claim_order", "item", ["queue_id", "status", sa.text("priority DESC"), "id"]
        )
        op.drop_index("ix_item_claim_uncertainty", table_name="item")
        op.create_index(
            "ix_item_claim_uncertainty",
            "item",
            ["queue_id", "status", sa.text("priority DESC"), "uncertainty_rank", "id"],
        )


def _item_status_check(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("item") as batch_op:
        batch_op.drop_constraint("ck_item_status", type_="check")
        batch_op.create_check_constraint("ck_item_status", _in(values))
    _restore_claim_indexes()


def upgrade() -> None:
    _item_status_check(AFTER)
    op.create_table(
        "gold_item",
        sa.Column("item_id", sa.Integer(), sa.ForeignKey("item.id"), primary_key=True),
        sa.Column("queue_id", sa.Integer(), sa.ForeignKey("review_queue.id"), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("marked_by_id", sa.Integer(), sa.ForeignKey("user_account.id"), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("retired_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_gold_item_serving", "gold_item", ["queue_id", "retired_at", "item_id"])


def downgrade() -> None:
    op.drop_index("ix_gold_item_serving", table_name="gold_item")
    op.drop_table("gold_item")
    # Gold items go back to the queue as ordinary waiting items.
    op.execute("UPDATE item SET status = 'pending' WHERE status = 'gold'")
    _item_status_check(BEFORE)
