"""uncertainty order: item.uncertainty_rank and the claim index that follows it

A queue whose policy says `order: uncertainty` claims the least sure model answers first
(app.queues.order); the rank is stored on the item so the claim stays one index probe.
Items waiting at the upgrade are ranked from their newest prediction, so a queue switched
to the uncertainty order right away finds them in their place.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-01 19:00:00
"""

import sqlalchemy as sa
from alembic import op

from app.models import JSONType
from app.queues.order import rank_of

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None

UNRANKED = 2**31 - 1
CHUNK = 1000

item = sa.table("item", sa.column("id", sa.Integer), sa.column("uncertainty_rank", sa.Integer))
WAITING = sa.text(
    "SELECT i.id, i.external_id, p.candidates, p.detail FROM item AS i"
    " JOIN prediction AS p"
    "   ON p.id = (SELECT max(o.id) FROM prediction AS o WHERE o.item_id = i.id)"
    " WHERE i.status IN ('pending', 'in_review') AND i.id > :after"
    " ORDER BY i.id LIMIT :chunk"
).columns(
    sa.column("id", sa.Integer),
    sa.column("external_id", sa.String),
    sa.column("candidates", JSONType),
    sa.column("detail", JSONType),
)


def _rank_waiting_items() -> None:
    conn = op.get_bind()
    after = 0
    while rows := conn.execute(WAITING, {"after": after, "chunk": CHUNK}).all():
        conn.execute(
            item.update().where(item.c.id == sa.bindparam("item_id")),
            [
                {
                    "item_id": r.id,
                    "uncertainty_rank": rank_of(r.candidates, r.detail, r.external_id),
                }
                for r in rows
            ],
        )
        after = rows[-1].id


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
    _rank_waiting_items()
    op.create_index(
        "ix_item_claim_uncertainty",
        "item",
        ["queue_id", "status", sa.text("priority DESC"), "uncertainty_rank", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_item_claim_uncertainty", table_name="item")
    with op.batch_alter_table("item") as batch_op:
        batch_op.drop_column("uncertainty_rank")
