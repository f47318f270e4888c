"""Fitting a model on a snapshot: split, columns, calibrated pipeline, conformal threshold,
evaluation and the model card, all in memory (no database)."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from app.learning import artifacts
from app.learning.conformal import conformalize
from app.learning.evaluation import Active, compare_with_active, evaluate
from app.learning.features import choose_columns, table
from app.learning.pipeline import (
    build_pipeline,
    calibrated,
    calibrated_on_held_out,
    describe_pipeline,
)
from app.learning.snapshot import (
    CALIBRATION,
    CONFORMAL,
    EVALUATION,
    LEFT_OUT,
    ROLES,
    TRAIN,
    Snapshot,
    split_roles,
)
from app.models import Queue
from app.queues.service import HUMAN_SOURCES, policy_of

MIN_EXAMPLES = 10
# Bump when the default pipeline changes, so the same data and policy train a new version.
PIPELINE_VERSION = 2


class TrainingFailed(Exception):
    """Training could not produce a model; the active model is untouched."""


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


def library_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("loupe", "scikit-learn", "numpy", "scipy", "mapie", "skops"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def code_version() -> str | None:
    """The git commit of the running code, when it runs from a checkout."""
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
    was taken (see registry.active_for_comparison), or None when the queue has none.
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
    labels_per_answer = _count(r.target for r in rows if r.source in HUMAN_SOURCES)
    labels_per_answer |= {a: 0 for a in queue.labels or [] if a not in labels_per_answer}
    metrics["n_train"] = len(train_y)
    metrics["n_conformal"] = len(part[CONFORMAL])
    metrics["classes"] = classes
    metrics["metric"] = policy.metric
    compare_with_active(metrics, model, x_all, active, rows, part[EVALUATION], policy.metric)

    card = {
        "settings": training_settings(queue, seed),
        "columns": columns,
        "conformal": conformal.as_dict(),
        # Scoring offers the answers the model never saw, and routing auto-accepts nothing
        # while an answer has too few labels (app.learning.scoring.MIN_LABELS_PER_ANSWER).
        "labels_per_answer": labels_per_answer,
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
