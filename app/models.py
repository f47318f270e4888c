"""Loupe's tables, in SQLModel. Every schema change also gets an Alembic migration."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.dialects import postgresql
from sqlmodel import Field, SQLModel

from app.states import (
    ClaimState,
    ItemStatus,
    LabelSource,
    OutboxKind,
    QueueEventKind,
    RouteDecision,
    RunStatus,
    sql_in,
)

ITEM_STATUSES = tuple(ItemStatus)
# item.uncertainty_rank of an item without a margin: after every scored one (app.queues.order).
UNRANKED = 2**31 - 1
ROLES = ("reviewer", "lead", "scientist", "admin")
LABEL_SOURCES = tuple(LabelSource)


def utcnow() -> datetime:
    """Now, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator):
    """A timestamp that is always timezone-aware UTC, on SQLite too."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if value is not None and dialect.name == "sqlite":
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class StateType(sa.TypeDecorator):
    """A state column: a VARCHAR in the database, a member of its StrEnum in Python.

    A value outside the enum is refused before it reaches the database (whose CHECK
    constraint would refuse it too).
    """

    impl = sa.String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int = 20):
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value, dialect):
        return None if value is None else self.enum(value).value

    def process_result_value(self, value, dialect):
        return None if value is None else self.enum(value)


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _json(nullable: bool = True) -> Any:
    return Field(default=None, sa_type=JSONType, nullable=nullable)


def _state(
    enum: type[StrEnum], default: Any = None, nullable: bool = False, length: int = 20
) -> Any:
    return Field(default=default, sa_type=StateType(enum, length), nullable=nullable)


def _check(table: str, column: str, enum: type[StrEnum]) -> sa.CheckConstraint:
    """The column holds one of the enum's values (added to existing tables by 0006)."""
    return sa.CheckConstraint(sql_in(column, enum), name=f"ck_{table}_{column}")


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


class _Row(Protocol):
    id: int | None


def id_of(row: _Row) -> int:
    """The row's id. A row read from the database has one, a new row once it is flushed: a
    row without one here is a bug (a missing flush), said as such rather than passed on."""
    if row.id is None:
        raise RuntimeError(f"This {type(row).__name__} has no id yet: it was never flushed.")
    return row.id


def table_of(model: type[SQLModel]) -> sa.Table:
    """The model's Core table, for SQL that bypasses the ORM's per-row bookkeeping (bulk
    inserts, UPDATEs computed from each row's own values)."""
    return model.__table__  # type: ignore[attr-defined]  # SQLModel's stubs omit __table__


class User(UserMixin, SQLModel, table=True):
    __tablename__ = "user_account"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80, unique=True)
    password_hash: str | None = Field(default=None, max_length=255)
    role: str = Field(max_length=20)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Queue(SQLModel, table=True):
    __tablename__ = "review_queue"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    description: str = Field(default="", max_length=2000)
    labels: list[str] | None = _json()
    policy: dict = Field(default_factory=dict, sa_type=JSONType)
    # How reviewers see the payload: field order, labels, formats, units (see review/presenter.py).
    display: dict | None = _json()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class QueueMember(SQLModel, table=True):
    __tablename__ = "queue_member"
    queue_id: int = Field(foreign_key="review_queue.id", primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", primary_key=True)


class Item(SQLModel, table=True):
    __tablename__ = "item"
    __table_args__ = (
        sa.UniqueConstraint("queue_id", "external_id", name="uq_item_queue_external_id"),
        # Matches the claim's WHERE and ORDER BY, so the next item is one index probe.
        sa.Index("ix_item_claim_order", "queue_id", "status", sa.text("priority DESC"), "id"),
        # The same for queues whose policy orders claims by uncertainty (app.queues.order).
        sa.Index(
            "ix_item_claim_uncertainty",
            "queue_id",
            "status",
            sa.text("priority DESC"),
            "uncertainty_rank",
            "id",
        ),
        # Items nearing their service-level deadline, oldest first inside one priority
        # (app.queues.sla): the claim's second probe.
        sa.Index("ix_item_claim_deadline", "queue_id", "status", "priority", "created_at", "id"),
        sa.Index("ix_item_lease_expiry", "queue_id", "status", "lease_expires_at"),
        # The queue's newest items (the drift guard's window) without sorting the queue.
        sa.Index("ix_item_queue_newest", "queue_id", "id"),
        _check("item", "status", ItemStatus),
        _check("item", "route_decision", RouteDecision),
    )
    id: int | None = Field(default=None, primary_key=True)
    queue_id: int = Field(foreign_key="review_queue.id")
    external_id: str = Field(max_length=200)
    payload: dict = Field(default_factory=dict, sa_type=JSONType)
    status: ItemStatus = _state(ItemStatus, ItemStatus.PENDING)
    priority: int = Field(default=0)
    route_decision: RouteDecision | None = _state(RouteDecision, nullable=True)
    route_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    lease_owner_id: int | None = Field(default=None, foreign_key="user_account.id")
    lease_token: str | None = Field(default=None, max_length=64, unique=True)
    lease_expires_at: datetime | None = _ts()
    # Place in the uncertainty order, from the current prediction (app.queues.order).
    uncertainty_rank: int = Field(
        default=UNRANKED, sa_column_kwargs={"server_default": str(UNRANKED)}
    )


class Prediction(SQLModel, table=True):
    __tablename__ = "prediction"
    # The newest prediction of an item is one probe, whatever the planner's statistics say.
    __table_args__ = (sa.Index("ix_prediction_item_newest", "item_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="item.id")
    model_version: str | None = Field(default=None, max_length=120)
    # "producer" when pushed with the item, "model" when the queue's model scored it.
    source: str = Field(default="producer", max_length=20)
    candidates: list = Field(default_factory=list, sa_type=JSONType)
    # For the queue's own model: the conformal set ({"coverage", "set_size"}); when no model
    # answered: {"fallback": why, "rule": name or absent}. None for a producer's prediction.
    detail: dict | None = _json()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Claim(SQLModel, table=True):
    __tablename__ = "claim"
    # The claims a user holds right now (live or ahead): see app.review.presence.
    __table_args__ = (
        sa.Index("ix_claim_holder", "user_id", "state", "expires_at"),
        _check("claim", "state", ClaimState),
    )
    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(max_length=64, unique=True)
    item_id: int = Field(foreign_key="item.id", index=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    state: ClaimState = _state(ClaimState, ClaimState.LIVE)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class Review(SQLModel, table=True):
    __tablename__ = "review"
    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="item.id", index=True)
    claim_id: int = Field(foreign_key="claim.id", unique=True)
    user_id: int = Field(foreign_key="user_account.id", index=True)
    label: str = Field(max_length=200)
    comment: str | None = Field(default=None, max_length=5000)
    # The reviewer's word on the model: "right", "wrong" or "all_wrong" (no candidate fit).
    model_feedback: str | None = Field(default=None, max_length=20)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # What the reviewer was shown: {"prediction_id", "model_version", "source",
    # "candidates": [{"label", "score"}, ...] in their order}; None before 0014.
    shown: dict | None = _json()


class ItemEvent(SQLModel, table=True):
    """What happened to an item besides decisions: skip, escalate, flag, undo, reopen."""

    __tablename__ = "item_event"
    __table_args__ = (
        sa.Index("ix_item_event_user_time", "user_id", "created_at"),
        # The lead's desk finds flags not yet adjudicated (app.desk.adjudication).
        sa.Index("ix_item_event_kind_item", "kind", "item_id", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="item.id", index=True)
    user_id: int = Field(foreign_key="user_account.id")
    kind: str = Field(max_length=20)
    comment: str | None = Field(default=None, max_length=5000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Label(SQLModel, table=True):
    """The final answer for an item, with the provenance exports carry."""

    __tablename__ = "final_label"
    __table_args__ = (
        sa.Index("ix_final_label_queue_decided", "queue_id", "decided_at", "id"),
        _check("final_label", "source", LabelSource),
    )
    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="item.id", unique=True)
    queue_id: int = Field(foreign_key="review_queue.id")
    value: str = Field(max_length=200)
    source: LabelSource = _state(LabelSource)
    reviewers: list = Field(default_factory=list, sa_type=JSONType)
    decided_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    model_version: str | None = Field(default=None, max_length=120)
    model_label: str | None = Field(default=None, max_length=200)
    model_score: float | None = None
    model_feedback: str | None = Field(default=None, max_length=20)


class Outbox(SQLModel, table=True):
    """Work promised in the same transaction as a decision, handed to RQ by the relay."""

    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_pending", "processed_at", "enqueued_at"),
        _check("outbox", "kind", OutboxKind),
    )
    id: int | None = Field(default=None, primary_key=True)
    kind: OutboxKind = _state(OutboxKind, length=40)
    label_id: int | None = Field(default=None, foreign_key="final_label.id")
    queue_id: int = Field(foreign_key="review_queue.id", index=True)
    # kind "rescore": the version whose activation the waiting items must follow.
    model_version_id: int | None = Field(default=None, foreign_key="model_version.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    enqueued_at: datetime | None = _ts()
    processed_at: datetime | None = _ts()
    # Hand-overs to RQ so far. Once LOUPE_OUTBOX_MAX_ATTEMPTS of them failed or were lost,
    # the relay parks the row (see app.learning.parking) until an admin retries it.
    attempts: int = Field(default=0)
    parked_at: datetime | None = _ts(index=True)
    # The exception (traceback) of the row's last failed job.
    last_error: str | None = Field(default=None, sa_type=sa.Text)


class TrainingExample(SQLModel, table=True):
    __tablename__ = "training_example"
    __table_args__ = (_check("training_example", "source", LabelSource),)
    id: int | None = Field(default=None, primary_key=True)
    queue_id: int = Field(foreign_key="review_queue.id", index=True)
    label_id: int = Field(foreign_key="final_label.id", unique=True)
    item_id: int = Field(foreign_key="item.id")
    features: dict = Field(default_factory=dict, sa_type=JSONType)
    target: str = Field(max_length=200)
    source: LabelSource = _state(LabelSource)
    decided_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The first model version trained on this example; from then on its label is final.
    used_by_version_id: int | None = Field(default=None, foreign_key="model_version.id")


class TrainingSnapshot(SQLModel, table=True):
    """The exact, immutable list of training examples one training run read."""

    __tablename__ = "training_snapshot"
    __table_args__ = (
        sa.UniqueConstraint("queue_id", "content_hash", name="uq_snapshot_queue_hash"),
    )

    id: int | None = Field(default=None, primary_key=True)
    queue_id: int = Field(foreign_key="review_queue.id", index=True)
    content_hash: str = Field(max_length=64)
    # Training example ids in snapshot order (oldest first), zlib-compressed int64s.
    example_ids: bytes = Field(sa_type=sa.LargeBinary)
    # Each row's part in training, one byte per row: 0 train, 1 conformal, 2 evaluation,
    # 3 left out (an auto label newer than the held-out part).
    roles: bytes = Field(sa_type=sa.LargeBinary)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TrainingRun(SQLModel, table=True):
    """One attempt to train a model version: why it started and how it ended."""

    __tablename__ = "training_run"
    __table_args__ = (
        sa.Index("ix_training_run_queue_started", "queue_id", "started_at"),
        _check("training_run", "status", RunStatus),
    )

    id: int | None = Field(default=None, primary_key=True)
    queue_id: int = Field(foreign_key="review_queue.id")
    trigger: str = Field(max_length=200)
    status: RunStatus = _state(RunStatus, RunStatus.RUNNING)
    message: str | None = Field(default=None, max_length=2000)
    version_id: int | None = Field(default=None, foreign_key="model_version.id")
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = _ts()


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_version"
    # One version per snapshot and training settings: the same data under another feature
    # choice, coverage or seed is another model.
    __table_args__ = (
        sa.UniqueConstraint(
            "queue_id", "snapshot", "settings_hash", name="uq_model_queue_snapshot_settings"
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    queue_id: int = Field(foreign_key="review_queue.id", index=True)
    version: str = Field(max_length=120, unique=True)
    active: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    snapshot: str = Field(max_length=64)
    n_examples: int = Field(default=0)
    metrics: dict = Field(default_factory=dict, sa_type=JSONType)
    artifact: bytes = Field(sa_type=sa.LargeBinary)
    artifact_sha256: str = Field(max_length=64)
    # The novelty detector (skops), its SHA-256 on the card; None for older versions.
    novelty: bytes | None = Field(default=None, sa_type=sa.LargeBinary, nullable=True)
    settings_hash: str = Field(default="", max_length=64)
    snapshot_id: int | None = Field(default=None, foreign_key="training_snapshot.id")
    # Everything needed to use and to explain it: feature columns, conformal threshold,
    # parameters, seed, library versions, data summary (see learning/fitting.py).
    card: dict = Field(default_factory=dict, sa_type=JSONType)
    # Last time it became the active version: rolling back means the one active before.
    activated_at: datetime | None = _ts()
    # Who or what made it active that time: "training run", "promoted by ana", ...
    activated_by: str | None = Field(default=None, max_length=200)
    # The answers its split model (before the refit on every label) gave on the held-out
    # evaluation labels: zlib-compressed JSON {"ids", "answers"}; the promotion gate's
    # fair comparison on labels the served model has since trained on.
    held_out_answers: bytes | None = Field(default=None, sa_type=sa.LargeBinary)


class AuditFrame(SQLModel, table=True):
    """An item the model's answer would have auto-accepted, with the chance a person answers
    it anyway: the population and the sample of the audited-precision estimate
    (app.trust.precision)."""

    __tablename__ = "audit_frame"
    __table_args__ = (sa.Index("ix_audit_frame_scope", "queue_id", "model_version", "band"),)
    id: int | None = Field(default=None, primary_key=True)
    queue_id: int = Field(foreign_key="review_queue.id")
    item_id: int = Field(foreign_key="item.id", unique=True)
    model_version: str | None = Field(default=None, max_length=120)
    # The model's answer and its score: what a person's answer is compared with.
    answer: str = Field(max_length=200)
    score: float
    # The confidence band of the score (the stratum) and the chance, fixed when the item
    # was routed, that a person answers it: the audit rate, or 1 while auto-accept is paused.
    band: str = Field(max_length=20)
    sample_rate: float
    to_person: bool
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class QueueEvent(SQLModel, table=True):
    """What happened to a queue's automation, by whom (None: Loupe itself), when and why."""

    __tablename__ = "queue_event"
    __table_args__ = (
        sa.Index("ix_queue_event_queue_kind", "queue_id", "kind", "id"),
        sa.CheckConstraint(sql_in("kind", QueueEventKind), name="ck_queue_event_kind"),
    )
    id: int | None = Field(default=None, primary_key=True)
    queue_id: int = Field(foreign_key="review_queue.id")
    kind: QueueEventKind = _state(QueueEventKind, length=40)
    # The alarm concerned ("precision_below_target", ...), for alarm events.
    alarm: str | None = Field(default=None, max_length=60)
    user_id: int | None = Field(default=None, foreign_key="user_account.id")
    reason: str = Field(max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class GoldItem(SQLModel, table=True):
    """An item with a known answer, mixed into reviewers' streams to measure them
    (app.desk.gold). Its item has status `gold`: never a label, a training example, an
    audit-frame entry or an export. Retired (unmarked after answers came) it is served no
    more and counts no more, and still stays out of the labelled data."""

    __tablename__ = "gold_item"
    __table_args__ = (sa.Index("ix_gold_item_serving", "queue_id", "retired_at", "item_id"),)
    item_id: int = Field(foreign_key="item.id", primary_key=True)
    queue_id: int = Field(foreign_key="review_queue.id")
    label: str = Field(max_length=200)
    # The lead who marked it; None when it came in with `gold_label` at ingest.
    marked_by_id: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    retired_at: datetime | None = _ts()


class PolicyChange(SQLModel, table=True):
    """One change of a queue's policy: who (None: not known), when, and each changed field's
    value before and after ({field: {"before": …, "after": …}})."""

    __tablename__ = "policy_change"
    __table_args__ = (sa.Index("ix_policy_change_queue", "queue_id", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    queue_id: int = Field(foreign_key="review_queue.id")
    user_id: int | None = Field(default=None, foreign_key="user_account.id")
    # Where the change came from: "page" or "api".
    via: str = Field(max_length=10)
    changes: dict = Field(default_factory=dict, sa_type=JSONType)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
