"""model_version: the novelty detector

Each model version keeps a novelty detector fitted on its training rows (a skops file, its
SHA-256 on the card next to the profile of the training inputs); older versions have none.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 18:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_version") as batch_op:
        batch_op.add_column(sa.Column("novelty", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_version") as batch_op:
        batch_op.drop_column("novelty")
