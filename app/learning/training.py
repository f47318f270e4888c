"""Snapshots of training examples, fitting, evaluating and storing model versions."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MaxAbsScaler
from sqlalchemy import func, select, update
from sqlmodel import Session

from app.learning import artifacts
from app.models import ModelVersion, Queue, TrainingExample, utcnow

MIN_EXAMPLES = 10
HOLDOUT_SHARE = 0.2


class TrainingFailed(Exception):
    """Training could not produce a model; the active model is untouched."""


@dataclass(frozen=True)
class Snapshot:
    rows: list[tuple[int, dict, str]]  # (training example id, features, target), time-ordered
    content_hash: str


def take_snapshot(*, session: Session, queue_id: int) -> Snapshot:
    """Every training example of the queue, oldest first, named by a hash of its content."""
    rows = [
        (r.id, r.features, r.target)
        for r in session.execute(
            select(TrainingExample.id, TrainingExample.features, TrainingExample.target)
            .where(TrainingExample.queue_id == queue_id)
            .order_by(TrainingExample.decided_at, TrainingExample.id)
        )
    ]
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, separators=(",", ":")).encode())
        digest.update(b"\n")
    return Snapshot(rows=rows, content_hash=digest.hexdigest())


def build_pipeline(seed: int) -> Pipeline:
    """The default pipeline: one-hot categories and words, scaled numbers, logistic regression."""
    return Pipeline(
        [
            ("features", DictVectorizer(sparse=True)),
            ("scale", MaxAbsScaler()),
            ("model", LogisticRegression(max_iter=2000, C=1.0, random_state=seed)),
        ]
    )


def evaluate(pipeline, features: list[dict], targets: list[str]) -> dict:
    """Accuracy and macro F1 on held-out examples."""
    predicted = pipeline.predict(features)
    return {
        "accuracy": round(float(accuracy_score(targets, predicted)), 4),
        "macro_f1": round(float(f1_score(targets, predicted, average="macro", zero_division=0)), 4),
        "n_eval": len(targets),
    }


@dataclass
class Fitted:
    """A trained pipeline and what is known about it, before anything is stored."""

    snapshot: Snapshot
    pipeline: object
    metrics: dict


def _active(session: Session, queue_id: int) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(ModelVersion.queue_id == queue_id, ModelVersion.active)
    )


def snapshot_is_new(*, session: Session, queue_id: int, snap: Snapshot) -> bool:
    return (
        session.scalar(
            select(ModelVersion.id).where(
                ModelVersion.queue_id == queue_id, ModelVersion.snapshot == snap.content_hash
            )
        )
        is None
    )


def fit(snap: Snapshot, *, seed: int, active_artifact: tuple[bytes, str] | None) -> Fitted:
    """Fits and evaluates on a time-ordered hold-out; touches no database."""
    if len(snap.rows) < MIN_EXAMPLES:
        raise TrainingFailed(f"{len(snap.rows)} training examples; at least {MIN_EXAMPLES} needed")
    features = [r[1] for r in snap.rows]
    targets = [r[2] for r in snap.rows]
    if len(set(targets)) < 2:
        raise TrainingFailed("all training examples have the same label; need at least two")

    # Time-ordered hold-out: the newest labels grade a model that never saw them.
    cut = len(snap.rows) - max(1, int(len(snap.rows) * HOLDOUT_SHARE))
    train_x, train_y, eval_x, eval_y = features[:cut], targets[:cut], features[cut:], targets[cut:]
    if len(set(train_y)) < 2:
        raise TrainingFailed("the training part of the snapshot holds a single label")

    started = time.perf_counter()
    pipeline = build_pipeline(seed)
    pipeline.fit(train_x, train_y)
    metrics = evaluate(pipeline, eval_x, eval_y)
    metrics["n_train"] = len(train_y)
    metrics["fit_seconds"] = round(time.perf_counter() - started, 3)
    metrics["classes"] = [str(c) for c in pipeline.classes_]

    promote, reason = True, "first model of the queue"
    if active_artifact is not None:
        try:
            current = evaluate(artifacts.load(*active_artifact), eval_x, eval_y)
        except Exception as exc:  # a broken active model should not block a working one
            current, reason = None, f"active model could not be evaluated ({exc})"
        if current is not None:
            metrics["active_macro_f1_on_same_holdout"] = current["macro_f1"]
            promote = metrics["macro_f1"] >= current["macro_f1"]
            reason = (
                f"macro F1 {metrics['macro_f1']:.3f} vs active {current['macro_f1']:.3f} "
                f"on the same {len(eval_y)} newest labels"
            )
    metrics["promoted"] = promote
    metrics["promotion_reason"] = reason
    return Fitted(snapshot=snap, pipeline=pipeline, metrics=metrics)


def store(*, session: Session, queue: Queue, fitted: Fitted) -> ModelVersion | None:
    """Saves the version, marks its examples as used, and promotes it if it earned that.

    Returns None when the snapshot already has a version. Raises TrainingFailed when some
    of its labels were reopened while it trained: that model saw answers that are gone.
    """
    snap = fitted.snapshot
    if not snapshot_is_new(session=session, queue_id=queue.id, snap=snap):
        return None
    data, sha = artifacts.save(fitted.pipeline)
    n_versions = session.scalar(
        select(func.count()).select_from(ModelVersion).where(ModelVersion.queue_id == queue.id)
    )
    version = ModelVersion(
        queue_id=queue.id,
        version=f"{queue.name}-v{(n_versions or 0) + 1}",
        active=False,
        created_at=utcnow(),
        snapshot=snap.content_hash,
        n_examples=len(snap.rows),
        metrics=fitted.metrics,
        artifact=data,
        artifact_sha256=sha,
    )
    session.add(version)
    session.flush()
    # From now on these labels shaped a model: they can no longer be reopened.
    ids = [r[0] for r in snap.rows]
    still_there = 0
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        session.execute(
            update(TrainingExample)
            .where(TrainingExample.id.in_(chunk), TrainingExample.used_by_version_id.is_(None))
            .values(used_by_version_id=version.id)
        )
        still_there += session.scalar(
            select(func.count()).select_from(TrainingExample).where(TrainingExample.id.in_(chunk))
        )
    if still_there != len(ids):
        raise TrainingFailed(
            f"{len(ids) - still_there} labels were reopened during training; run again"
        )
    if fitted.metrics["promoted"]:
        activate(session=session, version=version)
    return version


def train_model_version(*, session: Session, queue: Queue, seed: int = 0) -> ModelVersion | None:
    """Snapshot, fit and store in one session (tests, the demo); the worker splits the steps
    so that no write transaction is open while the model fits."""
    snap = take_snapshot(session=session, queue_id=queue.id)
    if not snapshot_is_new(session=session, queue_id=queue.id, snap=snap):
        return None
    active = _active(session, queue.id)
    fitted = fit(
        snap,
        seed=seed,
        active_artifact=((active.artifact, active.artifact_sha256) if active else None),
    )
    return store(session=session, queue=queue, fitted=fitted)


def activate(*, session: Session, version: ModelVersion) -> None:
    """Makes this the queue's only active version."""
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.queue_id == version.queue_id, ModelVersion.id != version.id)
        .values(active=False)
    )
    version.active = True
    session.flush()
