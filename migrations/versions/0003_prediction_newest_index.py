"""prediction: index (item_id, id) for an item's newest prediction

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 21:40:00
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prediction") as batch_op:
        batch_op.create_index("ix_prediction_item_newest", ["item_id", "id"], unique=False)
        batch_op.drop_index("ix_prediction_item_id")


def downgrade() -> None:
    with op.batch_alter_table("prediction") as batch_op:
        batch_op.create_index("ix_prediction_item_id", ["item_id"], unique=False)
        batch_op.drop_index("ix_prediction_item_newest")
