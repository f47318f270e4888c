"""Every stored state, in one place: the values the tables' CHECK constraints allow.

Each is a `StrEnum`, so a member is the string stored and sent in the API
(`ItemStatus.AUTO_ACCEPTED == "auto_accepted"`) and formats as that string in raw SQL.
"""

from __future__ import annotations

from enum import StrEnum


class ItemStatus(StrEnum):
    """Where an item is: waiting, leased to a reviewer, answered, or sent to a lead."""

    PENDING = "pending"
    IN_REVIEW = "in_review"
    DONE = "done"
    AUTO_ACCEPTED = "auto_accepted"
    ESCALATED = "escalated"
    # A gold item (app.desk.gold): known answer, served to reviewers to measure them, never
    # labelled. The claim statement only takes pending items, so it never hands one out.
    GOLD = "gold"


class RouteDecision(StrEnum):
    """The routing decision taken when an item arrives (see app.routing.decision)."""

    AUTO_ACCEPT = "auto_accept"
    REVIEW = "review"
    AUDIT = "audit"


class ClaimState(StrEnum):
    """A reviewer's lease on an item, from handed out to ended."""

    LIVE = "live"
    # Leased in advance for the review page, shown the moment the current item is answered.
    AHEAD = "ahead"
    DECIDED = "decided"
    RELEASED = "released"
    EXPIRED = "expired"
    ESCALATED = "escalated"


class LabelSource(StrEnum):
    """Who gave a final label: a reviewer, the model on its own, an audit, or a lead."""

    HUMAN = "human"
    AUTO = "auto"
    AUDIT = "audit"
    ADJUDICATED = "adjudicated"


class RunStatus(StrEnum):
    """How a training run ended (or that it has not yet)."""

    RUNNING = "running"
    TRAINED = "trained"
    SKIPPED = "skipped"
    FAILED = "failed"


class OutboxKind(StrEnum):
    """The work an outbox row promises."""

    TRAINING_EXAMPLE = "training_example"
    RESCORE = "rescore"


def sql_in(column: str, enum: type[StrEnum]) -> str:
    """A CHECK constraint's text: the column holds one of the enum's values."""
    values = ", ".join(f"'{member}'" for member in enum)
    return f"{column} IN ({values})"


class QueueEventKind(StrEnum):
    """What happened to a queue's automation: an alarm raised or cleared, auto-accept paused
    or resumed (see app.trust.alarms)."""

    ALARM_RAISED = "alarm_raised"
    ALARM_CLEARED = "alarm_cleared"
    AUTO_ACCEPT_PAUSED = "auto_accept_paused"
    AUTO_ACCEPT_RESUMED = "auto_accept_resumed"
