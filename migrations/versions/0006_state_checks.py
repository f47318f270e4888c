"""states: CHECK constraints on every stored state

Item status and route, claim state, label and training example source, training run status
and outbox kind may hold only the values app/states.py names. The lists are written out
here, as they were when this revision was made, so the migration stays what it was when
the enums change.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 18:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ITEM_STATUS = ("pending", "in_review", "done", "auto_accepted", "escalated")
ROUTE = ("auto_accept", "review", "audit")
CLAIM_STATE = ("live", "ahead", "decided", "released", "expired", "escalated")
LABEL_SOURCE = ("human", "auto", "audit", "adjudicated")
RUN_STATUS = ("running", "trained", "skipped", "failed")
OUTBOX_KIND = ("training_example", "rescore")

# table: [(constraint name, column, allowed values)]
CHECKS = {
    "item": [
        ("ck_item_status", "status", ITEM_STATUS),
        ("ck_item_route_decision", "route_decision", ROUTE),
    ],
    "claim": [("ck_claim_state", "state", CLAIM_STATE)],
    "final_label": [("ck_final_label_source", "source", LABEL_SOURCE)],
    "training_example": [("ck_training_example_source", "source", LABEL_SOURCE)],
    "training_run": [("ck_training_run_status", "status", RUN_STATUS)],
    "outbox": [("ck_outbox_kind", "kind", OUTBOX_KIND)],
}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _restore_claim_index() -> None:
    """SQLite's batch mode rebuilds `item` from its reflection, which loses the DESC of the
    claim index (the claim's ORDER BY would then sort): build it again as 0001 did."""
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_item_claim_order", table_name="item")
        op.create_index(
            "ix_item_claim_order", "item", ["queue_id", "status", sa.text("priority DESC"), "id"]
        )


def upgrade() -> None:
    for table, checks in CHECKS.items():
        with op.batch_alter_table(table) as batch_op:
            for name, column, values in checks:
                batch_op.create_check_constraint(name, _in(column, values))
    _restore_claim_index()


def downgrade() -> None:
    for table, checks in CHECKS.items():
        with op.batch_alter_table(table) as batch_op:
            for name, _column, _values in checks:
                batch_op.drop_constraint(name, type_="check")
    _restore_claim_index()
