"""drop columns nothing reads: api_token.last_used_at, training_snapshot.n_rows and .sources

The token's last use was never written; a snapshot's row count and sources are on the model
card of every version trained on it (card["data"]), which is where they are read.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 18:45:00
"""

import sqlalchemy as sa
from alembic import op

from app.models import JSONType, UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_token") as batch_op:
        batch_op.drop_column("last_used_at")
    with op.batch_alter_table("training_snapshot") as batch_op:
        batch_op.drop_column("sources")
        batch_op.drop_column("n_rows")


def downgrade() -> None:
    # The values are gone: the columns come back with neutral defaults.
    with op.batch_alter_table("training_snapshot") as batch_op:
        batch_op.add_column(sa.Column("n_rows", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("sources", JSONType, nullable=False, server_default="{}"))
    with op.batch_alter_table("api_token") as batch_op:
        batch_op.add_column(sa.Column("last_used_at", UTCDateTime(), nullable=True))
