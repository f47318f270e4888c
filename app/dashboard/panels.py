"""The panels of a queue's dashboard (issue 11, point 6).

A panel is a plain function `(session, queue, window, now)` that returns a `Panel`: the data
of one chart (its kind names a function of app.dashboard.charts) and a caption saying in
plain words what the picture shows and what a lead should conclude. Every count is grouped
by time bucket in SQL (app.dashboard.timeline); Python only walks the few dozen buckets.

Adding a panel is writing its function and one `PanelSpec` line in PANELS.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import and_, case, func, or_, select
from sqlmodel import Session, col

from app.dashboard.timeline import Frame, Window, bucket_index, bucketed, dialect_of, epoch, frame
from app.desk.agreement import agreement_report
from app.desk.gold import gold_report
from app.learning.drift import PSI_ALARM, PSI_WARNING, drift_section
from app.learning.registry import versions_of
from app.models import AuditFrame, Item, Label, ModelVersion, Queue, Review, User, utcnow
from app.queues.service import HUMAN_SOURCES, policy_of
from app.states import ItemStatus, LabelSource
from app.trust.precision import Cell, alarm_target, stratified_precision

WAITING = (ItemStatus.PENDING, ItemStatus.IN_REVIEW, ItemStatus.ESCALATED)
TOP_REVIEWERS = 10
MAX_VERSIONS = 12
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class Panel:
    """One chart's data and its plain-words caption; `empty` when there is nothing to draw."""

    chart: str
    data: dict
    caption: str
    empty: bool = False


@dataclass(frozen=True)
class PanelSpec:
    key: str
    title: str
    compute: Callable[..., Panel]
    # What the chart's axes or marks mean, for the chart's own <desc>.
    kinds: tuple[str, ...] = field(default=())


def _time_labels(f: Frame) -> list[str]:
    """Each bucket's start, as a person names it (the chart's tooltips and description)."""
    if f.step >= 86400:
        fmt = "%d %b"
    else:
        fmt = "%H:%M" if f.window.seconds <= 86400 else "%d %b %H:%M"
    return [t.strftime(fmt) for t in f.starts]


def _time_ticks(f: Frame) -> list[str]:
    """The labels under the axis: hours every 4 h in a day, else days (every few)."""
    if f.step < 86400 and f.window.seconds <= 86400:
        every_hours = max(4, f.step // 3600)
        return [t.strftime("%H:%M") if t.hour % every_hours == 0 else "" for t in f.starts]
    every = (
        max(1, -(-f.count * f.step // 86400 // 7)) if f.step < 86400 else max(1, -(-f.count // 7))
    )
    ticks = []
    for i, t in enumerate(f.starts):
        day = int(t.timestamp()) // 86400
        keep = (t.hour == 0 and day % every == 0) if f.step < 86400 else i % every == 0
        ticks.append(t.strftime("%d %b") if keep else "")
    return ticks


def _when(t: datetime, f: Frame) -> str:
    return t.strftime("%d %b %H:%M" if f.step < 86400 else "%d %b")


def _plural(n: float, word: str) -> str:
    return f"{n:g} {word}{'' if n == 1 else 's'}"


def _hours_words(hours: float) -> str:
    if hours < 1:
        return f"{round(hours * 60)} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


def _step_words(step: int) -> str:
    return {3600: "hour", 6 * 3600: "6 hours", 86400: "day", 7 * 86400: "week"}.get(
        step, f"{step // 3600} hours"
    )


# --- Waiting items: depth and oldest age, reconstructed from arrivals and decisions ---------


def waiting_groups(
    *, session: Session, queue: Queue, f: Frame
) -> list[tuple[int, int, datetime, int]]:
    """Items waiting at some bucket end, grouped by (arrival bucket, decision bucket): the
    arrival bucket is -1 before the window, the decision bucket `f.count` while undecided.
    An item waits at the end of bucket k when arrival <= k < decision.

    One grouped query that walks the queue's items and probes each one's label by its unique
    item id: driving it from the labels' (queue, decided_at) index instead reads items in
    random order, five times slower on SQLite at 100,000 items."""
    dialect = dialect_of(session)
    arrived = bucketed(col(Item.created_at), f, dialect).label("arrived")
    decided = case(
        (col(Label.id).is_(None), f.count), else_=bucketed(col(Label.decided_at), f, dialect)
    ).label("decided")
    rows = session.execute(
        select(arrived, decided, func.min(col(Item.created_at)), func.count())
        .select_from(Item)
        .outerjoin(Label, col(Label.item_id) == col(Item.id))
        .where(
            col(Item.queue_id) == queue.id,
            or_(
                col(Label.decided_at) >= f.start,
                and_(col(Label.id).is_(None), col(Item.status).in_(WAITING)),
            ),
        )
        .group_by(sa.text("arrived"), sa.text("decided"))
    )
    last = f.count - 1
    return [(min(int(a), last), min(int(d), f.count), oldest, int(n)) for a, d, oldest, n in rows]


# The last few waiting_over_time answers, by (session, queue, frame): the depth and the
# oldest-age panels of one dashboard share the same frame (its `now` included).
_waiting_memo: OrderedDict[tuple, dict] = OrderedDict()


def _waiting(session: Session, queue: Queue, f: Frame) -> dict:
    key = (id(session), queue.id, f)
    if key not in _waiting_memo:
        _waiting_memo[key] = waiting_over_time(session=session, queue=queue, f=f)
        while len(_waiting_memo) > 4:
            _waiting_memo.popitem(last=False)
    return _waiting_memo[key]


def waiting_over_time(*, session: Session, queue: Queue, f: Frame) -> dict:
    """Per bucket end: items waiting (depth) and the oldest one's age in hours."""
    groups = waiting_groups(session=session, queue=queue, f=f)
    depth, oldest = [], []
    for k in range(f.count):
        live = [g for g in groups if g[0] <= k < g[1]]
        depth.append(sum(g[3] for g in live))
        first = min((g[2] for g in live), default=None)
        end = f.bucket_end(k)
        oldest.append(
            None if first is None else round(max((end - first).total_seconds(), 0) / 3600, 2)
        )
    return {"depth": depth, "oldest_hours": oldest}


def depth_panel(*, session: Session, queue: Queue, window: Window, now=None) -> Panel:
    f = frame(window, now=now)
    depth = _waiting(session, queue, f)["depth"]
    first, last, peak = depth[0], depth[-1], max(depth)
    at = _when(f.starts[depth.index(peak)], f)
    if last > first * 1.1 and last - first >= 5:
        verdict = (
            "It is growing: more items arrive than are decided. Add reviewers or let the "
            "model accept more."
        )
    elif last < first * 0.9:
        verdict = "It is shrinking: the team decides faster than items arrive."
    else:
        verdict = "It is steady: items are decided about as fast as they arrive."
    caption = (
        f"Items waiting for a person at the end of each {_step_words(f.step)}: {first} at the "
        f"start of the last {window.label}, {last} now, at most {peak} ({at} UTC). {verdict}"
    )
    data = {
        "x": _time_labels(f),
        "x_ticks": _time_ticks(f),
        "series": [{"name": "waiting items", "values": depth}],
        "y_label": "items waiting",
        "y_span": 5,
    }
    return Panel("lines", data, caption)


def oldest_panel(*, session: Session, queue: Queue, window: Window, now=None) -> Panel:
    f = frame(window, now=now)
    oldest = _waiting(session, queue, f)["oldest_hours"]
    values = [v for v in oldest if v is not None]
    sla = policy_of(queue).sla_hours
    if not values:
        caption = f"No item waited for a person in the last {window.label}."
        verdict = ""
    else:
        now_age = oldest[-1]
        caption = (
            f"How long the oldest waiting item had waited, at the end of each "
            f"{_step_words(f.step)}: at most {_hours_words(max(values))}; "
            + (f"now {_hours_words(now_age)}." if now_age is not None else "nothing waits now.")
        )
        if sla is not None:
            over = now_age is not None and now_age > sla
            verdict = f" The service level is {_hours_words(sla)} (dashed line): " + (
                "the oldest item is past it, so take it first."
                if over
                else "the oldest item is within it."
            )
        else:
            verdict = (
                " A line that keeps rising means some items are never picked: check their priority."
            )
    data = {
        "x": _time_labels(f),
        "x_ticks": _time_ticks(f),
        "series": [{"name": "oldest waiting item", "values": oldest}],
        "y_label": "hours waited",
        "y_span": 1.0,
        "reference": sla,
        "reference_label": "service level" if sla is not None else None,
    }
    return Panel("lines", data, caption + verdict, empty=not values)


# --- Throughput ----------------------------------------------------------------------------


def throughput_panel(*, session: Session, queue: Queue, window: Window, now=None) -> Panel:
    f = frame(window, now=now)
    b = bucketed(col(Review.created_at), f, dialect_of(session)).label("b")
    counts = [0] * f.count
    for i, n in session.execute(
        select(b, func.count())
        .join(Item, col(Item.id) == col(Review.item_id))
        .where(col(Item.queue_id) == queue.id, col(Review.created_at) >= f.start)
        .group_by(sa.text("b"))
    ):
        counts[min(int(i), f.count - 1)] += int(n)
    total = sum(counts)
    unit = _step_words(f.step)
    hours = window.seconds / 3600
    if total:
        peak = max(counts)
        caption = (
            f"Reviews done per {unit}: {total} in the last {window.label}, "
            f"{total / hours:.1f} an hour on average, at most {peak} in one {unit} "
            f"({_when(f.starts[counts.index(peak)], f)} UTC). Compare with the waiting items: "
            "if they grow while this stays flat, the team needs help."
        )
    else:
        caption = f"No review in the last {window.label}."
    data = {
        "x": _time_labels(f),
        "x_ticks": _time_ticks(f),
        "series": [{"name": "reviews", "values": counts}],
        "y_label": f"reviews per {unit}",
    }
    return Panel("columns", data, caption, empty=total == 0)


def reviewers_panel(*, session: Session, queue: Queue, window: Window, now=None) -> Panel:
    f = frame(window, now=now)
    rows = list(
        session.execute(
            select(col(User.name), func.count().label("n"))
            .select_from(Review)
            .join(Item, col(Item.id) == col(Review.item_id))
            .join(User, col(User.id) == col(Review.user_id))
            .where(col(Item.queue_id) == queue.id, col(Review.created_at) >= f.start)
            .group_by(col(User.name))
            .order_by(sa.text("n DESC"), col(User.name))
        )
    )
    bars = [{"name": name, "value": int(n)} for name, n in rows[:TOP_REVIEWERS]]
    rest = sum(int(n) for _, n in rows[TOP_REVIEWERS:])
    if rest:
        bars.append({"name": f"{len(rows) - TOP_REVIEWERS} others", "value": rest})
    total = sum(b["value"] for b in bars)
    if total:
        top = bars[0]
        share = top["value"] / total
        caption = (
            f"Reviews per reviewer in the last {window.label}: {len(rows)} "
            f"{'person' if len(rows) == 1 else 'people'}, {total} reviews. {top['name']} did "
            f"{share:.0%} of them."
            + (
                " One person carries most of the load: share it before they are away."
                if share > 0.6 and len(rows) > 1
                else ""
            )
        )
    else:
        caption = f"Nobody reviewed an item of this queue in the last {window.label}."
    return Panel("bars", {"rows": bars, "x_label": "reviews"}, caption, empty=total == 0)


# --- Service level -------------------------------------------------------------------------


def sla_panel(*, session: Session, queue: Queue, window: Window, now=None) -> Panel:
    f = frame(window, now=now)
    sla = policy_of(queue).sla_hours
    x = _time_labels(f)
    ticks = _time_ticks(f)
    if sla is None:
        caption = (
            "No service level is set for this queue, so no breach is counted. Set the "
            "policy's sla_hours to the hours an item may wait for a person."
        )
        series = [{"name": "decided late", "values": [0] * f.count}]
        return Panel(
            "columns",
            {"x": x, "x_ticks": ticks, "series": series, "y_label": "items"},
            caption,
            True,
        )
    dialect = dialect_of(session)
    seconds = sla * 3600
    due_from = f.start - timedelta(seconds=seconds)
    due_until = f.now - timedelta(seconds=seconds)
    due = bucket_index(col(Item.created_at), due_from, f.step, dialect).label("due")
    state = case(
        (col(Label.id).is_(None), "waiting"),
        (col(Label.source) == LabelSource.AUTO, "auto"),
        (
            epoch(col(Label.decided_at), dialect) - epoch(col(Item.created_at), dialect) > seconds,
            "late",
        ),
        else_="on_time",
    ).label("state")
    late, waiting = [0] * f.count, [0] * f.count
    on_time = 0
    for i, kind, n in session.execute(
        select(due, state, func.count())
        .outerjoin(Label, col(Label.item_id) == col(Item.id))
        .where(
            col(Item.queue_id) == queue.id,
            col(Item.created_at) >= due_from,
            col(Item.created_at) <= due_until,
            # Gold items are never settled: they only measure reviewers.
            col(Item.status) != ItemStatus.GOLD,
        )
        .group_by(sa.text("due"), sa.text("state"))
    ):
        i = min(int(i), f.count - 1)
        if kind == "late":
            late[i] += int(n)
        elif kind == "waiting":
            waiting[i] += int(n)
        elif kind == "on_time":
            on_time += int(n)
    overdue_now = session.scalar(
        select(func.count())
        .select_from(Item)
        .outerjoin(Label, col(Label.item_id) == col(Item.id))
        .where(
            col(Item.queue_id) == queue.id,
            col(Item.status).in_(WAITING),
            col(Label.id).is_(None),
            col(Item.created_at) < due_until,
        )
    )
    breaches = sum(late) + sum(waiting)
    due_n = breaches + on_time
    if due_n:
        caption = (
            f"Items whose {_hours_words(sla)} deadline fell in the last {window.label}, by the "
            f"{_step_words(f.step)} it fell in: {due_n} were due, {sum(late)} were decided late "
            f"and {sum(waiting)} are still waiting ({breaches / due_n:.0%} breached). "
        )
    else:
        caption = f"No item's {_hours_words(sla)} deadline fell in the last {window.label}. "
    caption += f"{_plural(overdue_now or 0, 'item')} wait past the deadline right now" + (
        ": take them first." if overdue_now else "."
    )
    series = [
        {"name": "decided late", "values": late},
        {"name": "still waiting", "values": waiting},
    ]
    data = {"x": x, "x_ticks": ticks, "series": series, "y_label": "items past deadline"}
    return Panel("columns", data, caption, empty=breaches == 0)


# --- Audited auto-accept precision over time -----------------------------------------------


def precision_over_time(
    *, session: Session, queue: Queue, f: Frame, confidence: float
) -> list[dict]:
    """stratified_precision of each bucket's audit frame items (grouped in SQL by bucket,
    band and audit rate, as app.trust.precision groups the whole frame)."""
    answered = and_(col(AuditFrame.to_person), col(Label.source).in_(HUMAN_SOURCES))
    b = bucketed(col(AuditFrame.created_at), f, dialect_of(session)).label("b")
    cells: dict[int, list[Cell]] = defaultdict(list)
    for i, band, rate, n, a, r in session.execute(
        select(
            b,
            col(AuditFrame.band),
            col(AuditFrame.sample_rate),
            func.count(),
            func.sum(case((answered, 1), else_=0)),
            func.sum(case((and_(answered, col(Label.value) == AuditFrame.answer), 1), else_=0)),
        )
        .outerjoin(Label, and_(col(Label.item_id) == AuditFrame.item_id, col(AuditFrame.to_person)))
        .where(col(AuditFrame.queue_id) == queue.id, col(AuditFrame.created_at) >= f.start)
        .group_by(sa.text("b"), col(AuditFrame.band), col(AuditFrame.sample_rate))
    ):
        cells[min(int(i), f.count - 1)].append(
            Cell(band, float(rate), int(n), int(a or 0), int(r or 0))
        )
    return [stratified_precision(cells.get(k, []), confidence) for k in range(f.count)]


def precision_panel(*, session: Session, queue: Queue, window: Window, now=None) -> Panel:
    f = frame(window, now=now, coarse=True)
    policy = policy_of(queue)
    target = alarm_target(policy)
    points = precision_over_time(session=session, queue=queue, f=f, confidence=policy.confidence)
    shown = [p for p in points if p["estimate"] is not None]
    unit = _step_words(f.step)
    if not shown:
        caption = (
            f"No audited auto-accept answer in the last {window.label}: nothing tells yet "
            "whether the model's auto-accepted answers are right. Raise the audit rate if "
            "auto-accept is on."
        )
    else:
        last = shown[-1]
        below = [p for p in shown if p["upper"] is not None and p["upper"] < target]
        caption = (
            f"The share of auto-accepted answers that people confirmed when audited, per {unit}, "
            f"with its interval ({policy.confidence:.0%} each side; the band). Latest: "
            f"{last['estimate']:.1%} (between {last['lower']:.1%} and {last['upper']:.1%}, "
            f"{_plural(last['n'], 'audit')}); the target is {target:.1%} (dashed line). "
            + (
                "In some periods even the upper bound is below the target: auto-accept was "
                "wrong too often then."
                if below
                else "A wide band means few audits: it says little either way."
            )
        )
    data = {
        "x": _time_labels(f),
        "x_ticks": _time_ticks(f),
        "series": [{"name": "audited precision", "values": [p["estimate"] for p in points]}],
        "band": {
            "lower": [p["lower"] for p in points],
            "upper": [p["upper"] for p in points],
        },
        "n": [p["n"] for p in points],
        "y_label": "precision",
        "y_min": 0.0,
        "y_max": 1.0,
        "percent": True,
        "reference": target,
        "reference_label": "target",
    }
    return Panel("lines", data, caption, empty=not shown)


# --- Model quality over versions -----------------------------------------------------------


def models_panel(*, session: Session, queue: Queue, window: Window, now=None) -> Panel:
    policy = policy_of(queue)
    metric = policy.metric
    versions = list(reversed(versions_of(session=session, queue=queue)[:MAX_VERSIONS]))

    def value(metrics: dict, key: str) -> float | None:
        v = (metrics or {}).get(key)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    series = [
        {"name": metric.replace("_", " "), "values": [value(v.metrics, metric) for v in versions]}
    ]
    if metric != "accuracy":
        series.append(
            {"name": "accuracy", "values": [value(v.metrics, "accuracy") for v in versions]}
        )
    active = next((i for i, v in enumerate(versions) if v.active), None)
    data = {
        "x": [v.version for v in versions],
        "series": series,
        "y_label": "on held-out labels",
        "y_min": 0.0,
        "y_max": 1.0,
        "percent": True,
        "highlight": active,
        "highlight_label": "active",
    }
    scored: list[tuple[ModelVersion, float]] = []
    for v in versions:
        s = value(v.metrics, metric)
        if s is not None:
            scored.append((v, s))
    if not scored:
        return Panel("lines", data, "No model version has been trained for this queue yet.", True)
    best = max(scored, key=lambda vs: vs[1])
    current = next((s for v, s in scored if v.active), None)
    caption = (
        f"The {metric.replace('_', ' ')} and accuracy of each model version on the human "
        f"labels it did not train on, oldest first ({len(versions)} versions). Best: "
        f"{best[0].version} ({best[1]:.1%})"
        + (
            f"; the active one scores {current:.1%}."
            if current is not None
            else "; no version is active."
        )
        + (
            " The active version is not the best scoring one: see why on the Models page."
            if current is not None and current < best[1]
            else ""
        )
    )
    return Panel("lines", data, caption)


# --- Calibration (reliability diagram) -----------------------------------------------------


def _decile(score, dialect: str):
    """The calibration bin of a score in [0, 1], in SQL (1.0 falls in the last bin)."""
    scaled = score * CALIBRATION_BINS
    raw = func.floor(scaled) if dialect == "postgresql" else sa.cast(scaled, sa.Integer)
    return case((score >= 1, CALIBRATION_BINS - 1), else_=sa.cast(raw, sa.Integer))


def calibration_bins(*, session: Session, queue: Queue, since: datetime) -> list[dict]:
    """Human final labels since `since` with the model's top answer and score, binned by
    score: per bin the items, mean score and share where the model's answer was right."""
    score = col(Label.model_score)
    b = _decile(score, dialect_of(session)).label("b")
    rows = session.execute(
        select(
            b,
            func.count(),
            func.avg(score),
            func.sum(case((col(Label.value) == col(Label.model_label), 1), else_=0)),
        )
        .where(
            col(Label.queue_id) == queue.id,
            col(Label.decided_at) >= since,
            col(Label.source).in_(HUMAN_SOURCES),
            score.is_not(None),
            col(Label.model_label).is_not(None),
        )
        .group_by(sa.text("b"))
    )
    out = []
    for i, n, mean, right in sorted(rows, key=lambda r: r[0]):
        out.append(
            {
                "lower": int(i) / CALIBRATION_BINS,
                "upper": (int(i) + 1) / CALIBRATION_BINS,
                "n": int(n),
                "mean_score": round(float(mean), 4),
                "observed": round(int(right) / int(n), 4),
            }
        )
    return out


def calibration_panel(*, session: Session, queue: Queue, window: Window, now=None) -> Panel:
    now = now or utcnow()
    bins = calibration_bins(
        session=session, queue=queue, since=now - timedelta(seconds=window.seconds)
    )
    n = sum(b["n"] for b in bins)
    if not n:
        caption = (
            f"No human decision in the last {window.label} on an item the model had scored, "
            "so the model's confidence cannot be checked yet."
        )
        return Panel("reliability", {"bins": []}, caption, True)
    gap = sum(b["n"] * (b["mean_score"] - b["observed"]) for b in bins) / n
    error = sum(b["n"] * abs(b["mean_score"] - b["observed"]) for b in bins) / n
    if error < 0.05:
        verdict = "The dots lie near the diagonal: the model's scores can be taken at their word."
    elif gap > 0:
        verdict = (
            "The dots lie below the diagonal: the model is overconfident, so a high score is "
            "less sure than it looks."
        )
    else:
        verdict = (
            "The dots lie above the diagonal: the model is underconfident, so a lower "
            "auto-accept threshold might keep the same precision (check it on audits)."
        )
    caption = (
        f"How often the model's top answer was what a person decided, against the score it "
        f"gave, over {n} human decisions in the last {window.label} (dot size: how many). "
        f"Average gap {error:.1%}. {verdict} People mostly see the items the model was unsure "
        "about, so the high-score dots rest on audits."
    )
    return Panel("reliability", {"bins": bins}, caption)


# --- Input drift ---------------------------------------------------------------------------


def drift_panel(*, session: Session, queue: Queue, window: Window, now=None) -> Panel:
    report = drift_section(session=session, queue=queue)
    features = sorted(report.get("features") or [], key=lambda r: -float(r.get("psi") or 0))
    rows = [{"name": r["name"], "value": round(float(r["psi"]), 3)} for r in features[:10]]
    data = {
        "rows": rows,
        "x_label": "population stability index (PSI)",
        "thresholds": [
            {"value": PSI_WARNING, "label": "worth a look"},
            {"value": PSI_ALARM, "label": "drifted"},
        ],
        "status": report.get("status"),
    }
    status = report.get("status")
    if status == "unknown" or not rows:
        why = report.get("why") or "too few recent items"
        caption = f"Drift cannot be measured yet: {why}."
        return Panel("bars", data, caption, True)
    top = rows[0]
    advice = {
        "ok": "Recent inputs look like the data the model learnt from: nothing to do.",
        "warning": "Some inputs have moved: watch the audited precision, retrain if it falls.",
        "alarm": (
            "Inputs have moved away from the training data: retrain on recent labels, and "
            "audit more meanwhile."
        ),
    }.get(str(status), "")
    caption = (
        f"How far the last {report.get('window')} items' inputs have moved from the active "
        f"model's training data, per feature (longest bar first: {top['name']}, {top['value']}). "
        f"Status: {status}. {advice} This panel always reads the latest items, whatever the "
        "window."
    )
    return Panel("bars", data, caption)


# --- Figures with an interval per reviewer (agreement, gold accuracy) ----------------------


def interval_panel(
    *,
    rows: list[dict],
    what: str,
    per: str = "reviewer",
    reference: float | None = None,
    unmeasured: str = "",
) -> Panel:
    """A dot-and-whisker chart of one figure per reviewer (or pair) with its interval:
    rows are {"name", "estimate", "lower", "upper", "n"}, estimate None when unmeasured.
    `reference` draws a dashed line (e.g. the queue-wide figure); `unmeasured` says what
    would make the figure appear."""
    measured = [r for r in rows if r.get("estimate") is not None]
    data = {"rows": rows, "x_label": what, "x_min": 0.0, "x_max": 1.0, "reference": reference}
    if not measured:
        return Panel("intervals", data, f"No {what} measured yet. {unmeasured}".strip(), True)
    low = min(measured, key=lambda r: r["estimate"])
    caption = (
        f"{what} per {per} with its interval (the whisker) and the number of items behind "
        f"it. Lowest: {low['name']} at {low['estimate']:.2f}. Whiskers that overlap are not "
        f"told apart by the data: act on a {per} only when the whole whisker is low."
    )
    return Panel("intervals", data, caption)


def _figure_row(name: str, figure: dict | None) -> dict:
    figure = figure or {}
    return {
        "name": name,
        "estimate": figure.get("estimate"),
        "lower": figure.get("lower"),
        "upper": figure.get("upper"),
        "n": figure.get("n") or 0,
    }


def kappa_rows(report: dict) -> list[dict]:
    """Rows for interval_panel from an agreement report ({"pairs": [{"reviewers": [a, b],
    "kappa": {"estimate", "lower", "upper", "n"}}], ...}, app.desk.agreement)."""
    return [
        _figure_row(" & ".join(p.get("reviewers") or []), p.get("kappa"))
        for p in report.get("pairs") or []
    ]


def gold_accuracy_rows(report: dict) -> list[dict]:
    """Rows for interval_panel from a gold report ({"reviewers": [{"reviewer", "accuracy":
    {"estimate", "lower", "upper", "n"}}], ...}, app.desk.gold)."""
    return [
        _figure_row(str(r.get("reviewer")), r.get("accuracy"))
        for r in report.get("reviewers") or []
    ]


def agreement_panel(*, session: Session, queue: Queue, window: Window, now=None) -> Panel:
    """Cohen's kappa per pair of reviewers over the window, Krippendorff's alpha of the
    queue as the dashed line (app.desk.agreement). The axis runs 0..1 like accuracy; a
    negative kappa is drawn at the left edge."""
    days = max(window.seconds // 86400, 1)
    report = agreement_report(session=session, queue=queue, days=days, now=now)
    alpha = (report.get("alpha") or {}).get("estimate")
    return interval_panel(
        rows=kappa_rows(report),
        what="Cohen's kappa",
        per="pair of reviewers",
        reference=alpha,
        unmeasured=(
            f"It needs at least {report.get('min_items', 10)} items that the same two "
            "reviewers both answered in this window: a policy with reviews_required above 1, "
            "or second reviews, gives them."
        ),
    )


def gold_panel(*, session: Session, queue: Queue, window: Window, now=None) -> Panel:
    """Each reviewer's accuracy on gold items, the queue's as the dashed line
    (app.desk.gold; all of the queue's gold answers, whatever the window)."""
    report = gold_report(session=session, queue=queue)
    overall = (report.get("accuracy") or {}).get("estimate")
    return interval_panel(
        rows=gold_accuracy_rows(report),
        what="gold accuracy",
        reference=overall,
        unmeasured=(
            "Mark items with a known answer as gold (the queue's Reviewers page, or gold_label "
            "at ingest) and set the policy's gold_rate: reviewers' answers on them show here."
        ),
    )


PANELS: list[PanelSpec] = [
    PanelSpec("depth", "Waiting items", depth_panel),
    PanelSpec("oldest", "Oldest waiting item", oldest_panel),
    PanelSpec("throughput", "Throughput", throughput_panel),
    PanelSpec("reviewers", "Reviews per reviewer", reviewers_panel),
    PanelSpec("sla", "Service level breaches", sla_panel),
    PanelSpec("precision", "Audited auto-accept precision", precision_panel),
    PanelSpec("models", "Model quality by version", models_panel),
    PanelSpec("calibration", "Calibration", calibration_panel),
    PanelSpec("drift", "Input drift", drift_panel),
    PanelSpec("agreement", "Agreement between reviewers", agreement_panel),
    PanelSpec("gold", "Gold accuracy per reviewer", gold_panel),
]


def dashboard(
    *, session: Session, queue: Queue, window: Window, now: datetime | None = None
) -> list[dict]:
    """Every panel of the queue's dashboard: key, title, chart kind, data, caption."""
    now = now or utcnow()
    out = []
    for spec in PANELS:
        p = spec.compute(session=session, queue=queue, window=window, now=now)
        out.append(
            {
                "key": spec.key,
                "title": spec.title,
                "chart": p.chart,
                "data": p.data,
                "caption": p.caption,
                "empty": p.empty,
            }
        )
    return out
