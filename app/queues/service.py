"""Creating queues, reading their policy, and counting their items."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import func, select
from sqlmodel import Session, col

from app.auth.service import add_membership, is_member
from app.errors import Conflict, NotFound, ValidationFailed, pydantic_details
from app.models import (
    ITEM_STATUSES,
    Item,
    Label,
    Queue,
    QueueMember,
    Review,
    TrainingExample,
    User,
    utcnow,
)
from app.queues.bands import BANDS, band_of
from app.states import ItemStatus, LabelSource

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class FeatureSpec(BaseModel):
    """One payload field the model reads; the kind is guessed from the data when not given."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: Literal["numeric", "categorical", "text"] | None = None


class Rule(BaseModel):
    """A business rule: when the model cannot answer, the first matching rule suggests a label.

    Rule answers are shown to reviewers as such and never auto-accepted.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    field: str = Field(min_length=1, max_length=200)
    op: Literal["==", "!=", ">", ">=", "<", "<=", "contains", "in", "present", "absent"]
    value: float | str | bool | list[float | str] | None = None
    label: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _value_fits_op(self):
        if self.op in (">", ">=", "<", "<=") and not isinstance(self.value, int | float):
            raise ValueError(f"'{self.op}' compares with a number")
        if self.op == "in" and not isinstance(self.value, list):
            raise ValueError("'in' needs a list of values")
        if self.op == "contains" and not isinstance(self.value, str):
            raise ValueError("'contains' needs a text value")
        return self


class Policy(BaseModel):
    """How a queue routes items, leases them and learns from them; every field has a default."""

    model_config = ConfigDict(extra="forbid")

    auto_accept_threshold: float = Field(0.9, ge=0, le=1)
    min_margin: float = Field(0.2, ge=0, le=1)
    audit_rate: float = Field(0.05, ge=0, le=1)
    # Audit rates of single confidence bands (app.queues.bands: "0.90-0.95", ...), overriding
    # audit_rate there: audit the bands where the model is less sure more often. The
    # precision estimate weights each band by its share, so it stays unbiased.
    audit_rate_by_band: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict, max_length=len(BANDS)
    )
    reviews_required: int = Field(1, ge=1, le=10)
    lease_seconds: int = Field(300, ge=10, le=86_400)
    # Retrain after this many new human labels (0: only on request).
    retrain_after: int = Field(200, ge=0)
    # Also retrain on a schedule, when there are new labels (0: no schedule).
    retrain_every_hours: float = Field(0, ge=0, le=24 * 366)
    # Candidate lists are conformal sets holding the true answer this often.
    coverage: float = Field(0.95, ge=0.5, le=0.999)
    # Auto-accept by a guaranteed precision instead of a score: each training run chooses
    # the model's threshold so that precision >= target_precision with probability
    # >= confidence (None: the auto_accept_threshold decides, as before). The audited
    # precision alarm checks the same target (or, without one, auto_accept_threshold) with
    # a lower bound at the same confidence.
    target_precision: float | None = Field(None, ge=0.5, le=0.999)
    confidence: float = Field(0.9, ge=0.5, le=0.999)
    # What a new model must beat the active one on to be promoted.
    metric: Literal["macro_f1", "accuracy", "weighted_f1"] = "macro_f1"
    # Auto-accepted labels are the model's own answers; only train on them when asked.
    train_on_auto: bool = False
    # Payload fields the model reads (None: every usable field).
    features: list[FeatureSpec] | None = Field(None, max_length=500)
    # Answers suggested when no model can score an item in time.
    rules: list[Rule] = Field(default_factory=list, max_length=100)
    # An alarm (audited precision below target, ...) stops auto-accepting until a lead resumes.
    pause_on_alarm: bool = True
    # Audited answers needed before the precision alarm may fire: a handful proves nothing.
    alarm_min_audits: int = Field(30, ge=1, le=1_000_000)
    # The order claims take, after priority: "arrival" (oldest first) or "uncertainty" (the
    # least sure model answers first, spread out: app.queues.order).
    order: Literal["arrival", "uncertainty"] = "arrival"
    # Service level: an item should be decided within this many hours of its arrival (None:
    # no service level). Items past NEARING_SHARE of it come before the queue's order, and
    # items decided or still waiting past it count as breaches (app.queues.sla).
    sla_hours: float | None = Field(None, gt=0, le=24 * 366)
    # The share of claims that serve a gold item (known answer) to measure the reviewer
    # (app.desk.gold); 0: none.
    gold_rate: float = Field(0, ge=0, le=1)
    # Reviewers see their own gold accuracy in My stats (app.desk.my_stats).
    gold_feedback_to_reviewers: bool = False
    # How k > 1 reviews settle an item: all agree, a strict majority, or Dawid-Skene (each
    # reviewer's reliability learned from the queue's history). Unresolved: a lead decides.
    consensus: Literal["unanimous", "majority", "dawid_skene"] = "unanimous"
    # With one review per item, ask one more when the reviewer overrides a model whose top
    # answer scored at least this (None: never) ...
    second_review_on_override: float | None = Field(None, ge=0, le=1)
    # ... or when the reviewer's measured accuracy (app.desk.accuracy) is below this.
    second_review_below_accuracy: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _known_bands(self) -> Policy:
        unknown = sorted(set(self.audit_rate_by_band) - set(BANDS))
        if unknown:
            raise ValueError(
                f"audit_rate_by_band: unknown band {unknown[0]!r}; the bands are "
                + ", ".join(BANDS)
            )
        return self

    def audit_rate_for(self, score: float) -> float:
        """The chance an item the model would auto-accept at this top score is audited."""
        return self.audit_rate_by_band.get(band_of(score), self.audit_rate)


class FieldDisplay(BaseModel):
    """How one payload field is shown to reviewers."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    label: str | None = Field(None, max_length=200)
    format: (
        Literal["money", "int", "number", "percent", "date", "text", "category", "image"] | None
    ) = None
    unit: str | None = Field(None, max_length=20)


class Display(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fields: list[FieldDisplay] = Field(default_factory=list, max_length=200)
    # Image URLs in payloads are shown only from these hosts (https or http).
    image_hosts: list[str] = Field(default_factory=list, max_length=50)
    # What one item is, in the reviewers' words ("claim"): "about 8 in 10 similar claims".
    noun: str | None = Field(None, min_length=1, max_length=40, pattern=r"^[\w -]+$")


class QueueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    labels: list[str] | None = Field(None, min_length=1, max_length=1000)
    description: str = Field("", max_length=2000)
    policy: Policy = Field(default_factory=Policy)
    display: Display | None = None


def _check_rule_labels(policy: Policy, labels: list[str] | None) -> None:
    if labels is None:
        return
    unknown = [
        {"field": f"policy.rules.{i}.label", "message": f"{r.label!r} is not a label of the queue"}
        for i, r in enumerate(policy.rules)
        if r.label not in labels
    ]
    if unknown:
        raise ValidationFailed("A rule suggests a label the queue does not have.", unknown)


def update_policy(*, session: Session, queue: Queue, changes: dict) -> Policy:
    """Changes some policy fields (the others keep their values); all or nothing."""
    policy = validate_policy_changes(queue=queue, changes=changes)
    queue.policy = policy.model_dump()
    session.flush()
    return policy


def validate_policy_changes(*, queue: Queue, changes: dict) -> Policy:
    """The queue's policy with `changes` applied, validated, not saved: the one check the
    API's PATCH, the policy page and its preview share. Raises ValidationFailed."""
    if not isinstance(changes, dict) or not changes:
        raise ValidationFailed(
            "Send the policy fields to change, as a JSON object.",
            [{"field": "policy", "message": "expected a non-empty object"}],
        )
    try:
        policy = Policy.model_validate({**(queue.policy or {}), **changes})
    except ValidationError as exc:
        details = [{**d, "field": f"policy.{d['field']}"} for d in pydantic_details(exc.errors())]
        raise ValidationFailed("The policy is not valid.", details) from None
    _check_rule_labels(policy, queue.labels)
    return policy


def policy_of(queue: Queue) -> Policy:
    """The queue's policy with defaults filled in."""
    return Policy(**(queue.policy or {}))


def create_queue(*, session: Session, data: dict, creator: User | None = None) -> Queue:
    """Validates and creates a queue; the creator becomes a member."""
    try:
        spec = QueueIn.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("The queue is not valid.", pydantic_details(exc.errors())) from None
    if not SLUG.match(spec.name):
        raise ValidationFailed(
            "A queue name is a slug: lower-case letters, digits and '-', at most 64.",
            [{"field": "name", "message": "not a slug"}],
        )
    if spec.labels is not None:
        bad = [i for i, lab in enumerate(spec.labels) if not lab.strip() or len(lab) > 200]
        if bad or len(set(spec.labels)) != len(spec.labels):
            raise ValidationFailed(
                "Labels must be distinct, non-empty, at most 200 characters.",
                [{"field": f"labels.{i}", "message": "invalid label"} for i in bad]
                or [{"field": "labels", "message": "duplicate labels"}],
            )
        _check_rule_labels(spec.policy, spec.labels)
    if session.scalar(select(col(Queue.id)).where(col(Queue.name) == spec.name)) is not None:
        raise Conflict(f"A queue named {spec.name!r} already exists.")
    queue = Queue(
        name=spec.name,
        labels=spec.labels,
        description=spec.description,
        policy=spec.policy.model_dump(),
        display=spec.display.model_dump(exclude_none=True) if spec.display else None,
    )
    session.add(queue)
    session.flush()
    if creator is not None and creator.role != "admin":
        add_membership(session=session, user=creator, queue=queue)
    return queue


def get_queue(*, session: Session, name: str, user: User | None = None) -> Queue:
    """The named queue; 404 when it does not exist or the user is not a member."""
    queue = session.scalar(select(Queue).where(col(Queue.name) == name))
    if queue is None or (
        user is not None and not is_member(session=session, user=user, queue=queue)
    ):
        raise NotFound(f"No queue named {name!r} that you can see.")
    return queue


def queues_for(*, session: Session, user: User) -> list[Queue]:
    """The queues a user belongs to (all of them for an admin), by name."""
    stmt = select(Queue).order_by(col(Queue.name))
    if user.role != "admin":
        stmt = stmt.join(QueueMember, col(QueueMember.queue_id) == col(Queue.id)).where(
            col(QueueMember.user_id) == user.id
        )
    return list(session.scalars(stmt))


def item_counts(*, session: Session, queue_ids: list[int]) -> dict[int, dict[str, int]]:
    """Items per status for each queue, in one grouped query."""
    counts: dict[int, dict[str, int]] = {qid: dict.fromkeys(ITEM_STATUSES, 0) for qid in queue_ids}
    if not queue_ids:
        return counts
    rows = session.execute(
        select(col(Item.queue_id), col(Item.status), func.count())
        .where(col(Item.queue_id).in_(queue_ids))
        .group_by(col(Item.queue_id), col(Item.status))
    )
    for qid, status, n in rows:
        counts[qid][status] = n
    return counts


_recent_counts: dict[int, tuple[float, dict[str, int]]] = {}
COUNTS_MAX_AGE = 5.0


def recent_item_counts(*, session: Session, queue_id: int) -> dict[str, int]:
    """Item counts for the review page, at most a few seconds old.

    Counting a queue of a hundred thousand items costs more than the rest of the page, and a
    reviewer reading "1,204 waiting" does not need it exact to the second.
    """
    now = time.monotonic()
    hit = _recent_counts.get(queue_id)
    if hit is not None and now - hit[0] < COUNTS_MAX_AGE:
        return hit[1]
    counts = item_counts(session=session, queue_ids=[queue_id])[queue_id]
    _recent_counts[queue_id] = (now, counts)
    return counts


def training_counts(*, session: Session, queue: Queue) -> dict[str, int]:
    """Training examples made, and final labels still waiting to become one."""
    examples = session.scalar(
        select(func.count())
        .select_from(TrainingExample)
        .where(col(TrainingExample.queue_id) == queue.id)
    )
    eligible = session.scalar(
        select(func.count())
        .select_from(Label)
        .where(col(Label.queue_id) == queue.id, col(Label.source).in_(TRAINABLE_SOURCES))
    )
    return {"examples": examples or 0, "awaiting": max((eligible or 0) - (examples or 0), 0)}


# Labels a person gave or confirmed. Auto-accepted labels are the model's own answers:
# training on them would teach it itself, so they are used only when the queue says so.
TRAINABLE_SOURCES = (LabelSource.HUMAN, LabelSource.AUDIT, LabelSource.ADJUDICATED)
HUMAN_SOURCES = TRAINABLE_SOURCES


def queue_json(queue: Queue, counts: dict[str, int]) -> dict:
    return {
        "name": queue.name,
        "labels": queue.labels,
        "description": queue.description,
        "counts": counts,
        "created_at": queue.created_at.isoformat(),
    }


def queue_home_stats(*, session: Session, queues: list[Queue], user: User, now=None) -> dict:
    """Per queue: oldest waiting item's age, and items decided today by the user and the team."""
    now = now or utcnow()
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
    ids = [q.id for q in queues]
    stats = {qid: {"oldest": None, "mine_today": 0, "team_today": 0} for qid in ids}
    if not ids:
        return stats
    for qid, oldest in session.execute(
        select(col(Item.queue_id), func.min(col(Item.created_at)))
        .where(col(Item.queue_id).in_(ids), col(Item.status) == ItemStatus.PENDING)
        .group_by(col(Item.queue_id))
    ):
        if oldest is not None:
            stats[qid]["oldest"] = now - oldest
    for qid, reviewer, n in session.execute(
        select(col(Item.queue_id), col(Review.user_id), func.count())
        .join(Item, col(Item.id) == col(Review.item_id))
        .where(col(Item.queue_id).in_(ids), col(Review.created_at) >= midnight)
        .group_by(col(Item.queue_id), col(Review.user_id))
    ):
        stats[qid]["team_today"] += n
        if reviewer == user.id:
            stats[qid]["mine_today"] += n
    return stats


def age_words(delta) -> str:
    """A waiting time a person reads at a glance."""
    if delta is None:
        return "—"
    seconds = int(delta.total_seconds())
    if seconds < 90:
        return "just now"
    if seconds < 5400:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
