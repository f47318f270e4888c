"""Snapshots of training examples; fitting, calibrating, conformalising, evaluating and
storing model versions; promotion and roll-back.

A run splits its snapshot by time. Human labels only grade and calibrate: the newest 20%
evaluate the new model (and the active one, on the rows it never trained on), the 20%
before them set the conformal threshold, and everything older trains. Auto-accepted labels
can join the training part when the queue allows it, never the held-out parts.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import func, select, update
from sqlmodel import Session

from app.learning import artifacts
from app.learning.conformal import Conformal, conformalize
from app.learning.features import choose_columns, table
from app.learning.pipeline import (
    build_pipeline,
    calibrated,
    calibrated_on_held_out,
    describe_pipeline,
)
from app.models import (
    Label,
    ModelVersion,
    Outbox,
    Queue,
    TrainingExample,
    TrainingSnapshot,
    utcnow,
)
from app.queues.service import HUMAN_SOURCES, policy_of
from app.states import LabelSource, OutboxKind

MIN_EXAMPLES = 10
# Bump when the default pipeline changes, so the same data and policy train a new version.
PIPELINE_VERSION = 2
HOLDOUT_SHARE = 0.2
CONFORMAL_SHARE = 0.2
TRAIN, CONFORMAL, EVALUATION, LEFT_OUT, CALIBRATION = 0, 1, 2, 3, 4
ROLES = ("train", "conformal", "evaluation", "left_out", "calibration")
# Fewer held-out rows than this that the active model never saw: grade both on all of them.
MIN_FAIR_EVAL = 10


class TrainingFailed(Exception):
    """Training could not produce a model; the active model is untouched."""


@dataclass(frozen=True)
class Row:
    example_id: int
    payload: dict
    target: str
    source: str
    decided_at: datetime


@dataclass(frozen=True)
class Snapshot:
    rows: list[Row]  # time-ordered, oldest first
    content_hash: str
    # How reviewers' labels relate to the model that was there when they labelled.
    shaping: dict = field(default_factory=dict)

    @property
    def ids(self) -> list[int]:
        return [r.example_id for r in self.rows]


def _hash_rows(rows: list[Row]) -> str:
    digest = hashlib.sha256()
    for r in rows:
        digest.update(
            json.dumps(
                [r.example_id, r.payload, r.target, r.source],
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode()
        )
        digest.update(b"\n")
    return digest.hexdigest()


def take_snapshot(*, session: Session, queue_id: int, include_auto: bool = False) -> Snapshot:
    """The queue's training examples, oldest first, named by a hash of their content."""
    sources = (*HUMAN_SOURCES, LabelSource.AUTO) if include_auto else HUMAN_SOURCES
    result = session.execute(
        select(
            TrainingExample.id,
            TrainingExample.features,
            TrainingExample.target,
            TrainingExample.source,
            TrainingExample.decided_at,
            Label.model_label,
            Label.model_feedback,
        )
        .join(Label, Label.id == TrainingExample.label_id)
        .where(TrainingExample.queue_id == queue_id, TrainingExample.source.in_(sources))
        .order_by(TrainingExample.decided_at, TrainingExample.id)
    )
    rows, shaping = [], {"human_labels": 0, "corrected_model": 0, "feedback": {}}
    for r in result:
        rows.append(Row(r[0], r[1], r[2], r[3], r[4]))
        if r[3] in HUMAN_SOURCES:
            shaping["human_labels"] += 1
            if r[5] is not None and r[5] != r[2]:
                shaping["corrected_model"] += 1
            if r[6]:
                shaping["feedback"][r[6]] = shaping["feedback"].get(r[6], 0) + 1
    return Snapshot(rows=rows, content_hash=_hash_rows(rows), shaping=shaping)


def split_roles(rows: list[Row]) -> list[int]:
    """Each row's part: TRAIN, CONFORMAL, EVALUATION or LEFT_OUT (see the module docstring)."""
    human = [i for i, r in enumerate(rows) if r.source in HUMAN_SOURCES]
    n_eval = max(1, round(len(human) * HOLDOUT_SHARE))
    n_conf = max(1, round(len(human) * CONFORMAL_SHARE))
    roles = [LEFT_OUT] * len(rows)
    for i in human[-n_eval:]:
        roles[i] = EVALUATION
    for i in human[-(n_eval + n_conf) : -n_eval]:
        roles[i] = CONFORMAL
    first_held = human[-(n_eval + n_conf)] if len(human) > n_eval + n_conf else 0
    for i in range(first_held):
        roles[i] = TRAIN
    return roles


def pack_ids(values: list[int], dtype) -> bytes:
    return zlib.compress(np.asarray(values, dtype=dtype).tobytes())


def unpack_ids(data: bytes, dtype) -> np.ndarray:
    return np.frombuffer(zlib.decompress(data), dtype=dtype)


def expected_calibration_error(correct: np.ndarray, confidence: np.ndarray, bins: int = 10):
    """Top-label ECE: how far, on average, stated confidence is from observed accuracy."""
    if len(correct) == 0:
        return None
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return round(float(error), 4)


def evaluate(model, x, targets: list[str], conformal: Conformal | None = None) -> dict:
    """Overall and per-class metrics, calibration error and, given a conformal threshold,
    the measured coverage of the candidate sets, on held-out rows."""
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    proba = model.predict_proba(x)
    classes = np.asarray([str(c) for c in model.classes_])
    predicted = classes[proba.argmax(axis=1)]
    y = np.asarray(targets, dtype=object)
    labels = sorted(set(classes) | set(targets))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, predicted, labels=labels, zero_division=0
    )
    out = {
        "accuracy": round(float(accuracy_score(y, predicted)), 4),
        "macro_f1": round(float(f1_score(y, predicted, average="macro", zero_division=0)), 4),
        "weighted_f1": round(float(f1_score(y, predicted, average="weighted", zero_division=0)), 4),
        "n_eval": len(targets),
        "per_class": {
            lab: {
                "precision": round(float(p), 4),
                "recall": round(float(r), 4),
                "f1": round(float(f), 4),
                "support": int(s),
            }
            for lab, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        "confusion": {
            "labels": labels,
            "matrix": confusion_matrix(y, predicted, labels=labels).tolist(),
        },
        "calibration_error": expected_calibration_error(
            (predicted == y).astype(float), proba.max(axis=1)
        ),
    }
    if conformal is not None:
        sets = conformal.sets(proba)
        index = {c: i for i, c in enumerate(classes)}
        covered = [index.get(t) is not None and sets[n, index[t]] for n, t in enumerate(targets)]
        sizes = sets.sum(axis=1)
        out["coverage"] = round(float(np.mean(covered)), 4)
        out["coverage_target"] = conformal.coverage
        out["mean_set_size"] = round(float(sizes.mean()), 3)
        out["single_answer_share"] = round(float((sizes == 1).mean()), 4)
    return out


@dataclass
class Fitted:
    """A trained model and what is known about it, before anything is stored."""

    snapshot: Snapshot
    model: object
    roles: list[int]
    metrics: dict
    card: dict
    # The skops file and its SHA-256, made here so no write transaction waits on it.
    artifact: tuple[bytes, str]


def library_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("loupe", "scikit-learn", "numpy", "scipy", "mapie", "skops"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def code_version() -> str | None:
    """The git commit of the running code, when it runs from a checkout."""
    import subprocess
    from pathlib import Path

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def fit(snap: Snapshot, *, queue: Queue, seed: int = 0, active: Active | None = None) -> Fitted:
    """Fits, calibrates, conformalises and evaluates on time-ordered held-out human labels;
    touches no database. `active` is the queue's active version as it was when the snapshot
    was taken (see active_for_comparison), or None when the queue has none.
    """
    policy = policy_of(queue)
    rows = snap.rows
    human = sum(1 for r in rows if r.source in HUMAN_SOURCES)
    if human < MIN_EXAMPLES:
        raise TrainingFailed(f"{human} human labels; at least {MIN_EXAMPLES} needed")
    roles = split_roles(rows)
    auto_in_train = any(
        r.source not in HUMAN_SOURCES and role == TRAIN for r, role in zip(rows, roles, strict=True)
    )
    if auto_in_train:
        # Calibrating on folds of the training rows would calibrate on the model's own
        # answers: the older half of the conformal part calibrates instead.
        conformal_rows = [i for i, role in enumerate(roles) if role == CONFORMAL]
        for i in conformal_rows[: len(conformal_rows) // 2]:
            roles[i] = CALIBRATION
    part = {k: [i for i, role in enumerate(roles) if role == k] for k in range(len(ROLES))}
    train_y = [rows[i].target for i in part[TRAIN]]
    if len(set(train_y)) < 2:
        raise TrainingFailed("the training part of the snapshot holds a single label")

    started = time.perf_counter()
    payloads = [r.payload for r in rows]
    columns = choose_columns(
        [payloads[i] for i in part[TRAIN]],
        [f.model_dump() for f in policy.features] if policy.features else None,
    )
    if not columns:
        raise TrainingFailed("no payload field can be used as a feature")
    x_all = table(payloads, columns)
    x_train = x_all[part[TRAIN]]
    try:
        if auto_in_train:
            model = build_pipeline(columns, seed).fit(x_train, train_y)
            seen = {str(c) for c in model.classes_}
            cal = [i for i in part[CALIBRATION] if rows[i].target in seen]
            model, calibration = calibrated_on_held_out(
                model, x_all[cal], [rows[i].target for i in cal]
            )
        else:
            model, calibration = calibrated(build_pipeline(columns, seed), train_y, seed)
            model.fit(x_train, train_y)
    except ValueError as exc:
        raise TrainingFailed(f"the pipeline could not be fitted: {exc}") from exc
    fit_seconds = time.perf_counter() - started

    classes = [str(c) for c in model.classes_]
    conf_idx = [i for i in part[CONFORMAL] if rows[i].target in classes]
    conformal = conformalize(
        model,
        x_all[conf_idx],
        [rows[i].target for i in conf_idx],
        coverage=policy.coverage,
        n_unseen=len(part[CONFORMAL]) - len(conf_idx),
    )
    eval_y = [rows[i].target for i in part[EVALUATION]]
    metrics = evaluate(model, x_all[part[EVALUATION]], eval_y, conformal)
    metrics["n_train"] = len(train_y)
    metrics["n_conformal"] = len(part[CONFORMAL])
    metrics["classes"] = classes
    metrics["metric"] = policy.metric
    _compare_with_active(metrics, model, x_all, active, rows, part[EVALUATION], policy.metric)

    card = {
        "settings": training_settings(queue, seed),
        "columns": columns,
        "conformal": conformal.as_dict(),
        "calibration": calibration,
        "pipeline": describe_pipeline(model),
        "seed": seed,
        "libraries": library_versions(),
        "code_version": code_version(),
        "fit_seconds": round(fit_seconds, 3),
        "data": {
            "snapshot": snap.content_hash,
            "rows": len(rows),
            "sources": _count(r.source for r in rows),
            "train_labels": _count(train_y),
            "split": {
                "train": len(part[TRAIN]),
                "calibration": len(part[CALIBRATION]),
                "conformal": len(part[CONFORMAL]),
                "evaluation": len(part[EVALUATION]),
                "left_out": len(part[LEFT_OUT]),
            },
            "from": rows[0].decided_at.isoformat(),
            "to": rows[-1].decided_at.isoformat(),
        },
        "shaping": snap.shaping,
        "train_on_auto": policy.train_on_auto,
    }
    return Fitted(
        snapshot=snap,
        model=model,
        roles=roles,
        metrics=metrics,
        card=card,
        artifact=artifacts.save(model),
    )


def _count(values) -> dict:
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


@dataclass(frozen=True)
class Active:
    """The active version a new one must beat: its id, and the model with the ids of the
    examples it trained on when it could be loaded (else why not)."""

    version_id: int
    loaded: object | None  # scoring.LoadedModel
    trained_on: frozenset[int] | None
    error: str | None = None


def active_for_comparison(session: Session, queue_id: int) -> Active | None:
    """The queue's active version, ready to be graded against a new one; None if none."""
    from app.learning.scoring import load_version

    current = active_version(session, queue_id)
    if current is None:
        return None
    try:
        loaded = load_version(session, current)
    except artifacts.ArtifactError as exc:
        return Active(current.id, None, None, str(exc))
    trained_on = None
    if current.snapshot_id is not None:
        snap = session.get(TrainingSnapshot, current.snapshot_id)
        ids = unpack_ids(snap.example_ids, np.int64)
        trained_on = frozenset(ids[unpack_ids(snap.roles, np.uint8) == TRAIN].tolist())
    return Active(current.id, loaded, trained_on)


def _compare_with_active(metrics, model, x_all, active, rows, eval_idx, metric) -> None:
    """Grades the active model on the held-out rows it never trained on, and decides."""
    metrics["compared_with_version_id"] = active.version_id if active else None
    if active is None:
        metrics["promoted"], metrics["promotion_reason"] = True, "first model of the queue"
        return
    if active.loaded is None:
        metrics["promoted"] = True
        metrics["promotion_reason"] = f"the active model cannot be loaded ({active.error})"
        return
    seen = active.trained_on
    fair = [i for i in eval_idx if rows[i].example_id not in seen] if seen is not None else []
    note = ""
    if len(fair) < MIN_FAIR_EVAL:
        fair = list(eval_idx)
        note = (
            " (the active model had trained on some of them: too few new labels)"
            if seen is not None
            else " (the active model's training rows are not known)"
        )
    try:
        theirs = evaluate(
            active.loaded.model,
            active.loaded.inputs([rows[i].payload for i in fair]),
            [rows[i].target for i in fair],
        )
    except Exception as exc:  # noqa: BLE001 - a broken active model must not block a working one
        metrics["promoted"] = True
        metrics["promotion_reason"] = f"the active model could not be evaluated ({exc})"
        return
    ours = (
        metrics[metric]
        if len(fair) == len(eval_idx)
        else evaluate(model, x_all[fair], [rows[i].target for i in fair])[metric]
    )
    metrics["active_version"] = active.loaded.version
    metrics[f"active_{metric}"] = theirs[metric]
    metrics[f"new_{metric}_on_same_rows"] = ours
    metrics["compared_on"] = len(fair)
    better = ours > theirs[metric]
    metrics["promoted"] = better
    name = metric.replace("_", " ")
    metrics["promotion_reason"] = (
        f"{name} {ours:.3f} vs {theirs[metric]:.3f} for {active.loaded.version} on the same "
        f"{len(fair)} newest human labels{note}: "
        + ("better, promoted" if better else "not better, kept as a candidate")
    )


def store(*, session: Session, queue: Queue, fitted: Fitted) -> ModelVersion | None:
    """Saves the snapshot and the version, marks its examples as used, and promotes it if it
    earned that.

    Returns None when the snapshot already has a version. Raises TrainingFailed when some
    of its labels were reopened while it trained: that model saw answers that are gone.
    """
    snap = fitted.snapshot
    settings = settings_hash(fitted.card["settings"])
    if not snapshot_is_new(session=session, queue_id=queue.id, snap=snap, settings=settings):
        return None
    data, sha = fitted.artifact
    # The same rows trained again with other settings share their snapshot.
    snapshot = session.scalar(
        select(TrainingSnapshot).where(
            TrainingSnapshot.queue_id == queue.id,
            TrainingSnapshot.content_hash == snap.content_hash,
        )
    )
    if snapshot is None:
        snapshot = TrainingSnapshot(
            queue_id=queue.id,
            content_hash=snap.content_hash,
            n_rows=len(snap.rows),
            example_ids=pack_ids(snap.ids, np.int64),
            roles=pack_ids(fitted.roles, np.uint8),
            sources=fitted.card["data"]["sources"],
        )
        session.add(snapshot)
        session.flush()
    n_versions = session.scalar(
        select(func.count()).select_from(ModelVersion).where(ModelVersion.queue_id == queue.id)
    )
    version = ModelVersion(
        queue_id=queue.id,
        version=f"{queue.name}-v{(n_versions or 0) + 1}",
        active=False,
        created_at=utcnow(),
        snapshot=snap.content_hash,
        settings_hash=settings,
        snapshot_id=snapshot.id,
        n_examples=len(snap.rows),
        metrics=fitted.metrics,
        card=fitted.card,
        artifact=data,
        artifact_sha256=sha,
    )
    session.add(version)
    session.flush()
    # From now on these labels shaped a model: they can no longer be reopened.
    ids = snap.ids
    still_there = 0
    for start in range(0, len(ids), 10_000):
        member = _id_in(session, ids[start : start + 10_000])
        session.execute(
            update(TrainingExample)
            .where(member, TrainingExample.used_by_version_id.is_(None))
            .values(used_by_version_id=version.id)
        )
        still_there += session.scalar(
            select(func.count()).select_from(TrainingExample).where(member)
        )
    if still_there != len(ids):
        raise TrainingFailed(
            f"{len(ids) - still_there} labels were reopened during training; run again"
        )
    current = active_version(session, queue.id)
    compared = fitted.metrics.get("compared_with_version_id")
    if fitted.metrics["promoted"] and (current.id if current else None) != compared:
        # A person promoted or rolled back while this trained: theirs is the last word.
        version.metrics = {
            **fitted.metrics,
            "promoted": False,
            "promotion_reason": "the active model changed while this version trained; "
            "kept as a candidate",
        }
    elif fitted.metrics["promoted"]:
        activate(session=session, version=version, by="training run")
    return version


def training_settings(queue: Queue, seed: int) -> dict:
    """What, besides the data, decides the model a run makes."""
    policy = policy_of(queue)
    return {
        "pipeline": PIPELINE_VERSION,
        "seed": seed,
        "features": [f.model_dump() for f in policy.features] if policy.features else None,
        "coverage": policy.coverage,
        "metric": policy.metric,
        "train_on_auto": policy.train_on_auto,
    }


def settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def _id_in(session: Session, ids: list[int]):
    """`training_example.id IN ids`; one array parameter on PostgreSQL, where ten thousand
    bound values cost seconds to build and send."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy import any_, bindparam
        from sqlalchemy.dialects.postgresql import ARRAY, BIGINT

        return TrainingExample.id == any_(bindparam("ids", value=ids, type_=ARRAY(BIGINT)))
    return TrainingExample.id.in_(ids)


def snapshot_is_new(*, session: Session, queue_id: int, snap: Snapshot, settings: str) -> bool:
    """False when a version was already trained on this snapshot with these settings (a
    settings hash): training it again would make the same model."""
    return (
        session.scalar(
            select(ModelVersion.id).where(
                ModelVersion.queue_id == queue_id,
                ModelVersion.snapshot == snap.content_hash,
                ModelVersion.settings_hash == settings,
            )
        )
        is None
    )


def active_version(session: Session, queue_id: int) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(ModelVersion.queue_id == queue_id, ModelVersion.active)
    )


def train_model_version(*, session: Session, queue: Queue, seed: int = 0) -> ModelVersion | None:
    """Snapshot, fit and store in one session (tests, the demo); the worker splits the steps
    so that no write transaction is open while the model fits."""
    snap = take_snapshot(
        session=session, queue_id=queue.id, include_auto=policy_of(queue).train_on_auto
    )
    settings = settings_hash(training_settings(queue, seed))
    if not snapshot_is_new(session=session, queue_id=queue.id, snap=snap, settings=settings):
        return None
    active = active_for_comparison(session, queue.id)
    fitted = fit(snap, queue=queue, seed=seed, active=active)
    return store(session=session, queue=queue, fitted=fitted)


def activate(*, session: Session, version: ModelVersion, by: str) -> int:
    """Makes this the queue's only active version; `by` says who or what did it.

    Promises, in the same transaction, that the waiting items will be re-scored by it: the
    id of that outbox row is returned, for the caller to hand over after commit.
    """
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.queue_id == version.queue_id, ModelVersion.id != version.id)
        .values(active=False)
    )
    version.active = True
    version.activated_at = utcnow()
    version.activated_by = by[:200]
    rescore = Outbox(
        kind=OutboxKind.RESCORE, queue_id=version.queue_id, model_version_id=version.id
    )
    session.add(rescore)
    session.flush()
    return rescore.id
