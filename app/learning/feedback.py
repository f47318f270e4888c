"""From a final label to a training example, exactly once, through the outbox."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import exists, func, insert, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from app.models import Item, Label, Outbox, TrainingExample, table_of, utcnow
from app.queues.service import TRAINABLE_SOURCES, policy_of
from app.states import LabelSource, OutboxKind

# An outbox row handed to RQ but not done after this long is handed over again.
STALE_AFTER = timedelta(minutes=2)


def add_to_outbox(*, session: Session, label: Label) -> Outbox | None:
    """Promises a training example for this label, in the caller's transaction.

    The row is stamped as handed over: the caller enqueues it right after commit (and clears
    the stamp if Redis refuses); should the process die in between, the relay sends it again
    once the stamp is STALE_AFTER old. That saves a second transaction per decision.
    """
    if label.source not in TRAINABLE_SOURCES:
        return None
    row = Outbox(
        kind=OutboxKind.TRAINING_EXAMPLE,
        label_id=label.id,
        queue_id=label.queue_id,
        enqueued_at=utcnow(),
        attempts=1,
    )
    session.add(row)
    session.flush()
    return row


def outbox_due(*, session: Session, now=None, limit: int = 500) -> list[tuple]:
    """(id, kind, queue_id, model_version_id) of the outbox rows never handed to RQ, or
    handed over so long ago that the job was lost; parked rows wait for a person."""
    now = now or utcnow()
    return list(
        session.execute(
            select(
                col(Outbox.id), col(Outbox.kind), col(Outbox.queue_id), col(Outbox.model_version_id)
            )
            .where(
                col(Outbox.processed_at).is_(None),
                col(Outbox.parked_at).is_(None),
                or_(col(Outbox.enqueued_at).is_(None), col(Outbox.enqueued_at) < now - STALE_AFTER),
            )
            .order_by(col(Outbox.id))
            .limit(limit)
        )
    )


def mark_enqueued(*, session: Session, outbox_ids: list[int], now=None) -> None:
    if outbox_ids:
        session.execute(
            update(Outbox)
            .where(col(Outbox.id).in_(outbox_ids))
            .values(enqueued_at=now or utcnow(), attempts=col(Outbox.attempts) + 1)
        )


def make_training_example(*, session: Session, outbox_id: int) -> int | None:
    """Writes the training example promised by an outbox row; running it twice writes one.

    Returns the queue id when a new example was written, else None.
    """
    row = session.get(Outbox, outbox_id)
    if row is None or row.processed_at is not None or row.kind != OutboxKind.TRAINING_EXAMPLE:
        return None
    label = session.get(Label, row.label_id) if row.label_id is not None else None
    if label is None:
        raise LookupError(f"outbox row {outbox_id} has no label to make a training example of")
    item = session.get_one(Item, label.item_id)
    dialect = session.get_bind().dialect.name
    new_example = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(
        table_of(TrainingExample)
    )
    result = session.execute(
        new_example.values(
            queue_id=label.queue_id,
            label_id=label.id,
            item_id=item.id,
            # The payload as it was labelled; the pipeline picks its own columns from it.
            features=item.payload,
            target=label.value,
            source=label.source,
            decided_at=label.decided_at,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["label_id"])
        .returning(table_of(TrainingExample).c.id)
    )
    created = result.first() is not None
    row.processed_at = utcnow()
    session.flush()
    return label.queue_id if created else None


def retrain_due(*, session: Session, queue) -> bool:
    """True when the queue has at least `retrain_after` human labels no model has seen."""
    every = policy_of(queue).retrain_after
    if not every:
        return False
    new = (
        session.scalar(
            select(func.count())
            .select_from(TrainingExample)
            .where(
                col(TrainingExample.queue_id) == queue.id,
                col(TrainingExample.used_by_version_id).is_(None),
                col(TrainingExample.source).in_(TRAINABLE_SOURCES),
            )
        )
        or 0
    )
    return new >= every


def materialize_auto_examples(*, session: Session, queue_id: int) -> int:
    """Turns auto-accepted labels into training examples (source "auto"), for queues that
    chose to train on them; each label once. Returns how many were added."""
    missing = ~exists().where(col(TrainingExample.label_id) == col(Label.id))
    source = (
        select(
            col(Label.queue_id),
            col(Label.id),
            col(Label.item_id),
            col(Item.payload),
            col(Label.value),
            literal(LabelSource.AUTO.value),
            col(Label.decided_at),
            literal(utcnow(), type_=table_of(TrainingExample).c.created_at.type),
        )
        .join(Item, col(Item.id) == col(Label.item_id))
        .where(col(Label.queue_id) == queue_id, col(Label.source) == LabelSource.AUTO, missing)
    )
    rows = session.execute(
        insert(TrainingExample)
        .from_select(
            [
                "queue_id",
                "label_id",
                "item_id",
                "features",
                "target",
                "source",
                "decided_at",
                "created_at",
            ],
            source,
        )
        .returning(col(TrainingExample.id))
    ).all()
    return len(rows)
