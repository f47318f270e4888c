"""Drift of recent inputs from the active model's training data (issue 10, point 4).

The queue's last WINDOW items are binned like the profile of the active version's training
inputs (learning/profile.py: quantile bins per number, top values per category, the share of
known words per text) and compared with it by the population stability index,
PSI = sum over buckets of (recent - training) * ln(recent / training), i.e. the symmetric
Kullback-Leibler divergence, computed with scipy's `entropy`. A feature counts towards the
status only when its PSI reaches a threshold and a chi-square test (scipy's
`chi2_contingency`, Bonferroni over the features) says the difference is not sampling noise:
with a few hundred items or training rows, PSI alone is above 0.1 by chance.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2_contingency, entropy
from sqlalchemy import select
from sqlmodel import Session, col

from app.learning.features import table
from app.learning.profile import bucket_shares, text_vectorizers
from app.learning.scoring import active_model
from app.models import Item, ModelVersion, Queue, id_of

WINDOW = 1000
# Fewer recent items than this: no status (the bins would be mostly noise).
MIN_WINDOW = 100
# The usual PSI reading: below 0.1 stable, 0.1-0.25 a shift worth a look, above 0.25 a
# population the model was not trained on.
PSI_WARNING = 0.1
PSI_ALARM = 0.25
# Family-wise chance that noise alone marks some feature as drifted.
SIGNIFICANCE = 0.01
# A bucket empty on one side would make PSI infinite: shares are floored at this.
FLOOR = 1e-4
# While a feature is in alarm, items whose value falls in a bucket that recent items fill at
# least this many times as often as the training rows did (and by CROWDED_EXCESS more) go to
# a person: a shifted value inside the training range looks ordinary one item at a time.
CROWDED_RATIO = 2.0
CROWDED_EXCESS = 0.02
# drift_hold() measures again once this many items arrived since, or after HOLD_SECONDS.
HOLD_REFRESH_ITEMS = 100
HOLD_SECONDS = 60.0

STATUS_OK, STATUS_WARNING, STATUS_ALARM, STATUS_UNKNOWN = "ok", "warning", "alarm", "unknown"
# The statuses as /metrics numbers (loupe_queue_drift_level).
DRIFT_LEVELS = {STATUS_OK: 0, STATUS_WARNING: 1, STATUS_ALARM: 2}

_cache: OrderedDict[tuple, _Measured] = OrderedDict()
_latest: dict[int, _Measured] = {}  # the last report measured per queue, for drift_hold()
_cache_lock = threading.Lock()


def psi(training: list[float], recent: list[float]) -> float:
    """Population stability index of two distributions over the same buckets."""
    e = np.maximum(np.asarray(training, dtype=float), FLOOR)
    a = np.maximum(np.asarray(recent, dtype=float), FLOOR)
    e, a = e / e.sum(), a / a.sum()
    return float(entropy(a, e) + entropy(e, a))


def _p_value(training: list[float], n_training: int, recent: list[float], n_recent: int):
    """Chi-square test that the recent items and the training rows share one distribution
    over the buckets (buckets empty on both sides left out)."""
    counts = np.array(
        [np.round(np.asarray(training) * n_training), np.round(np.asarray(recent) * n_recent)]
    )
    counts = counts[:, counts.sum(axis=0) > 0]
    if counts.shape[1] < 2 or (counts.sum(axis=1) == 0).any():
        return 1.0
    return float(chi2_contingency(counts).pvalue)


def _level(value: float, significant: bool) -> str:
    if not significant or value < PSI_WARNING:
        return STATUS_OK
    return STATUS_ALARM if value >= PSI_ALARM else STATUS_WARNING


def _unknown(why: str, window: int = 0) -> dict:
    return {"status": STATUS_UNKNOWN, "why": why, "window": window, "features": []}


@dataclass(frozen=True)
class _Measured:
    """A drift report as measured, with the crowded buckets of its features in alarm."""

    report: dict
    crowded: dict[str, dict]
    version_id: int | None
    newest: int
    at: float
    # When the newest item was stored: with its id, it names the window's contents even
    # where ids come round again (a restored or emptied database, the test suite).
    newest_at: object = None


def drift_section(*, session: Session, queue: Queue, window: int = WINDOW) -> dict:
    """The drift report of the queue: {"status", "window", "features": [{"name", "psi",
    ...}], ...}; "unknown" (with "why") when there is no model, profile or enough items."""
    return _measured(session, queue, window).report


def _measured(session: Session, queue: Queue, window: int = WINDOW) -> _Measured:
    model, why = active_model(session=session, queue=queue)
    if model is None:
        return _Measured(_unknown(why or "no trained model yet"), {}, None, 0, time.monotonic())
    newest, newest_at = _newest(session, queue)
    profile = model.profile
    if not profile or not profile.get("features"):
        why = f"model {model.version} was trained without an input profile"
        return _Measured(_unknown(why), {}, model.version_id, newest, time.monotonic())
    queue_id = id_of(queue)
    key = (queue_id, model.version_id, newest, newest_at, window)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    report, crowded = _measure(session, queue, model, profile, window)
    measured = _Measured(report, crowded, model.version_id, newest, time.monotonic(), newest_at)
    with _cache_lock:
        _cache[key] = measured
        _latest[queue_id] = measured
        while len(_cache) > 64:
            _cache.popitem(last=False)
    return measured


def newest_stmt(queue_id: int):
    """The queue's newest item (id, stored at): one probe of ix_item_queue_newest."""
    return (
        select(col(Item.id), col(Item.created_at))
        .where(col(Item.queue_id) == queue_id)
        .order_by(col(Item.id).desc())
        .limit(1)
    )


def window_stmt(queue_id: int, window: int):
    """The payloads of the queue's last `window` items, newest first (ix_item_queue_newest)."""
    return (
        select(col(Item.payload))
        .where(col(Item.queue_id) == queue_id)
        .order_by(col(Item.id).desc())
        .limit(window)
    )


def _newest(session: Session, queue: Queue) -> tuple[int, object]:
    """(id, stored at) of the queue's newest item, or (0, None)."""
    row = session.execute(newest_stmt(id_of(queue))).first()
    return (row[0], row[1]) if row else (0, None)


def _measure(session: Session, queue: Queue, model, profile: dict, window: int):
    """(the report, {feature in alarm: {"buckets": crowded buckets, "psi"}})."""
    payloads = list(session.scalars(window_stmt(id_of(queue), window)))
    return _measure_payloads(model, profile, payloads)


def _measure_payloads(model, profile: dict, payloads: list[dict]):
    """_measure's figures for these payloads (the recent window, or an arriving batch)."""
    n = len(payloads)
    if n < MIN_WINDOW:
        return _unknown(f"{n} items in the queue; at least {MIN_WINDOW} are needed", n), {}
    columns = [c for c in model.columns if c["name"] in profile["features"]]
    x = table(payloads, columns)
    vectorizers = text_vectorizers(model.model, columns)
    measured = []
    for j, c in enumerate(columns):
        prof = profile["features"][c["name"]]
        if "shares" not in prof or (prof["kind"] == "text" and c["name"] not in vectorizers):
            continue
        recent = bucket_shares(prof, x[:, j], vectorizers.get(c["name"]))
        measured.append((c["name"], prof, recent))
    threshold = SIGNIFICANCE / max(len(measured), 1)
    features, crowded = [], {}
    for name, prof, recent in measured:
        value = psi(prof["shares"], recent)
        p = _p_value(prof["shares"], prof.get("rows", profile["n"]), recent, n)
        level = _level(value, p < threshold)
        feature = {
            "name": name,
            "kind": prof["kind"],
            "psi": round(value, 4),
            "p_value": p,
            "status": level,
        }
        if level == STATUS_ALARM:
            crowded[name] = {
                "psi": feature["psi"],
                "buckets": [
                    b
                    for b, (t, r) in enumerate(zip(prof["shares"], recent, strict=True))
                    if r >= CROWDED_RATIO * t and r - t >= CROWDED_EXCESS
                ],
            }
        features.append(feature)
    features.sort(key=lambda f: -f["psi"])
    levels = {f["status"] for f in features}
    status = next(
        (s for s in (STATUS_ALARM, STATUS_WARNING) if s in levels),
        STATUS_OK,
    )
    report = {
        "status": status,
        "window": n,
        "model_version": model.version,
        "thresholds": {"warning": PSI_WARNING, "alarm": PSI_ALARM, "significance": SIGNIFICANCE},
        "features": features,
    }
    return report, crowded


def drift_hold(session: Session, queue: Queue, incoming: list[dict] | None = None) -> dict | None:
    """What scoring holds back while the queue's inputs drift: {"version_id", "features":
    {name: {"buckets", "psi"}}} for each feature in alarm, or None. Measured again once
    HOLD_REFRESH_ITEMS items arrived or HOLD_SECONDS passed, so a busy queue does not read its
    window on every batch. An arriving batch of at least MIN_WINDOW items (`incoming`) is
    measured on its own as well: a shift that arrives all at once is held from its first
    batch, not only once it is stored."""
    with _cache_lock:
        last = _latest.get(id_of(queue))
    if last is not None:
        newest, _ = _newest(session, queue)
        # The item the last report ended at, still there as it was: else the queue's history
        # is not the one measured (ids came round again), and the report is stale.
        same_history = (
            last.newest == 0
            or session.scalar(
                select(col(Item.created_at)).where(
                    col(Item.id) == last.newest, col(Item.queue_id) == queue.id
                )
            )
            == last.newest_at
        )
        # A newer active version (just promoted) is judged against its own profile.
        active_id = session.scalar(
            select(col(ModelVersion.id)).where(
                col(ModelVersion.queue_id) == queue.id, col(ModelVersion.active)
            )
        )
        if (
            not same_history
            or active_id != last.version_id
            or newest - last.newest >= HOLD_REFRESH_ITEMS
            or time.monotonic() - last.at >= HOLD_SECONDS
        ):
            last = None
    if last is None:
        last = _measured(session, queue)
    crowded = {k: v for k, v in last.crowded.items() if v["buckets"]}
    version_id = last.version_id
    if incoming is not None and len(incoming) >= MIN_WINDOW:
        model, _ = active_model(session=session, queue=queue)
        profile = model.profile if model is not None else None
        if model is not None and profile and profile.get("features"):
            _, batch = _measure_payloads(model, profile, incoming)
            if model.version_id != version_id:
                crowded, version_id = {}, model.version_id
            for name, found in batch.items():
                if found["buckets"] and name not in crowded:
                    crowded[name] = found
    return {"version_id": version_id, "features": crowded} if crowded else None


def drift_alarm(session: Session, queue: Queue) -> str | None:
    """Why the queue's inputs raise a drift alarm (PSI at or past PSI_ALARM on some feature,
    beyond sampling noise), or None."""
    report = drift_section(session=session, queue=queue)
    if report["status"] != STATUS_ALARM:
        return None
    worst = [f for f in report["features"] if f["status"] == STATUS_ALARM]
    named = ", ".join(f"{f['name']} (PSI {f['psi']:.2f})" for f in worst[:3])
    more = f" and {len(worst) - 3} more" if len(worst) > 3 else ""
    return (
        f"the last {report['window']} items differ from what model {report['model_version']} "
        f"learned from: {named}{more}; alarm at PSI {PSI_ALARM}"
    )
