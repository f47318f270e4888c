"""claims a user holds: one index probe

The review pages ask on every load, and every open page every 20 seconds, which items a
user holds (state live or ahead); without this index that reads every claim the user
ever had.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 16:00:00
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_claim_holder", "claim", ["user_id", "state", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_claim_holder", table_name="claim")
