"""model_version: the split model's answers on its held-out evaluation labels

A served model is refit on every label, so a later candidate cannot grade it on those labels
any more; the promotion gate compares with these answers, given by the model that had not
seen them (see app.learning.evaluation).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_version") as batch_op:
        batch_op.add_column(sa.Column("held_out_answers", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_version") as batch_op:
        batch_op.drop_column("held_out_answers")
