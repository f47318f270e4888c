"""item (queue_id, id): the queue's newest items in one index probe

The drift guard reads the queue's newest item on every ingest batch and its last 1,000
items when it measures; without this index both sort the whole queue (a million items on
SQLite: about a second each).

Revision ID: 0018
Revises: 0016
Create Date: 2026-12-01 22:00:00
"""

from alembic import op

revision = "0018"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("item") as batch_op:
        batch_op.create_index("ix_item_queue_newest", ["queue_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("item") as batch_op:
        batch_op.drop_index("ix_item_queue_newest")
