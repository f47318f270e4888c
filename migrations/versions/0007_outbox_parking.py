"""outbox: parked rows and the error of their last attempt

The relay stops handing a row to RQ once LOUPE_OUTBOX_MAX_ATTEMPTS hand-overs have failed
(or their jobs were lost): `parked_at` says when, `last_error` keeps the job's exception.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 20:00:00
"""

import sqlalchemy as sa
from alembic import op

from app.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("parked_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch_op.create_index("ix_outbox_parked_at", ["parked_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_index("ix_outbox_parked_at")
        batch_op.drop_column("last_error")
        batch_op.drop_column("parked_at")
