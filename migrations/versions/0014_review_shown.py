"""review.shown: what each reviewer was shown; the index the lead's desk finds flags by

Every review records the prediction it was given (id, model version, source and the
candidates in their order), so anchoring on the model's answer can be studied and exports
carry it (`shown`). Reviews made before this revision have none.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 21:30:00
"""

import sqlalchemy as sa
from alembic import op

from app.models import JSONType

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review") as batch_op:
        batch_op.add_column(sa.Column("shown", JSONType, nullable=True))
    op.create_index("ix_item_event_kind_item", "item_event", ["kind", "item_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_item_event_kind_item", table_name="item_event")
    with op.batch_alter_table("review") as batch_op:
        batch_op.drop_column("shown")
