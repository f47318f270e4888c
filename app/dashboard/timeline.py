"""The dashboard's windows and time buckets, and the SQL that puts a timestamp in a bucket.

A window (24 h, 7 days, 30 days) is cut into buckets aligned on UTC (hours, days, weeks), so
"per hour" bars start on the hour. Bucketing happens in the database (GROUP BY bucket): the
epoch of a timestamp is `extract(epoch ...)` on PostgreSQL and `strftime('%s', ...)` on SQLite,
which stores UTCDateTime as naive UTC text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.sql.elements import ColumnElement

from app.errors import ValidationFailed
from app.models import utcnow

HOUR = 3600
DAY = 24 * HOUR


@dataclass(frozen=True)
class Window:
    """A span the dashboard looks back over, with its bucket sizes (in seconds)."""

    key: str
    label: str
    seconds: int
    step: int  # depth, throughput, SLA
    coarse_step: int  # audited precision: audits are few, so fewer, larger buckets


WINDOWS = {
    w.key: w
    for w in (
        Window("24h", "24 hours", DAY, HOUR, 4 * HOUR),
        Window("7d", "7 days", 7 * DAY, 6 * HOUR, DAY),
        Window("30d", "30 days", 30 * DAY, DAY, 7 * DAY),
    )
}
DEFAULT_WINDOW = "7d"


def window_of(key: str | None) -> Window:
    """The named window (the default when none is named); 422 for an unknown name."""
    if not key:
        return WINDOWS[DEFAULT_WINDOW]
    if key not in WINDOWS:
        raise ValidationFailed(
            f"Unknown window {key[:20]!r}; choose one of {', '.join(WINDOWS)}.",
            [{"field": "window", "message": "unknown window"}],
        )
    return WINDOWS[key]


@dataclass(frozen=True)
class Frame:
    """A window laid on the clock: `count` buckets of `step` seconds from `start`, the last
    one holding `now` (so it is still filling)."""

    window: Window
    now: datetime
    step: int
    start: datetime
    count: int

    def bucket_start(self, i: int) -> datetime:
        return self.start + timedelta(seconds=i * self.step)

    def bucket_end(self, i: int) -> datetime:
        """The end of bucket i, or now for the bucket still filling."""
        return min(self.bucket_start(i + 1), self.now)

    def index_of(self, when: datetime) -> int:
        """The bucket a time falls in (-1 before the window)."""
        if when < self.start:
            return -1
        return min(int((when - self.start).total_seconds()) // self.step, self.count - 1)

    @property
    def starts(self) -> list[datetime]:
        return [self.bucket_start(i) for i in range(self.count)]


def frame(window: Window, *, now: datetime | None = None, coarse: bool = False) -> Frame:
    """The window ending now, cut into buckets aligned on UTC multiples of the step."""
    now = now or utcnow()
    step = window.coarse_step if coarse else window.step
    epoch = int(now.timestamp())
    # Weeks start on Monday: the Unix epoch was a Thursday, so shift by four days.
    offset = 4 * DAY if step == 7 * DAY else 0
    end = (epoch - offset) // step * step + offset + step
    count = -(-window.seconds // step)
    start = datetime.fromtimestamp(end - count * step, UTC)
    return Frame(window=window, now=now, step=step, start=start, count=count)


def epoch(column: Any, dialect: str) -> ColumnElement:
    """Seconds since 1970 of a UTC timestamp column, in SQL."""
    if dialect == "postgresql":
        return sa.cast(func.extract("epoch", column), sa.BigInteger)
    return sa.cast(func.strftime("%s", column), sa.Integer)


def bucket_index(column: Any, start: datetime, step: int, dialect: str) -> ColumnElement:
    """The bucket of a timestamp at or after `start`, in SQL: an integer division (`//` is
    `/` on integers in both dialects), which truncates, the floor for non-negative offsets."""
    offset = epoch(column, dialect) - int(start.timestamp())
    return offset // step


def bucketed(column: Any, f: Frame, dialect: str) -> ColumnElement:
    """bucket_index for a frame, -1 before its start. A time after the frame's end (a clock
    ahead of this one) gets an index past the last: callers clamp it."""
    return sa.case((column < f.start, -1), else_=bucket_index(column, f.start, f.step, dialect))


def dialect_of(session) -> str:
    return session.get_bind().dialect.name
