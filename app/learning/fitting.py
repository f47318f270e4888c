"""Fitting a model on a snapshot: split, columns, calibrated pipeline, conformal threshold,
evaluation and the model card, all in memory (no database)."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
import zlib
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from app.learning import artifacts
from app.learning.auto_accept import choose_rule
from app.learning.conformal import conformalize
from app.learning.evaluation import Active, compare_with_active, evaluate
from app.learning.features import choose_columns, table
from app.learning.novelty import fit_novelty
from app.learning.pipeline import (
    build_pipeline,
    calibrated,
    calibrated_on_held_out,
    describe_pipeline,
)
from app.learning.profile import build_profile
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
# The queue's first model is promoted only when each answer has this many human labels.
MIN_LABELS_FIRST_MODEL = 5
# Bump when the default pipeline changes, so the same data and policy train a new version.
# 3: the served model is refit on every label after the split (card["served"]).
PIPELINE_VERSION = 3


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
    # The novelty detector's skops file and its SHA-256 (None: no detector).
    novelty: tuple[bytes, str] | None = None
    # The split model's answers on the evaluation rows (see pack_answers).
    held_out_answers: bytes | None = None
    # The model trained on the split's training part only: it chose the thresholds and was
    # graded (`model` is it refit on every label; see card["served"]).
    split_model: object = None


def training_settings(queue: Queue, seed: int) -> dict:
    """What, besides the data, decides the model a run makes."""
    policy = policy_of(queue)
    out = {
        "pipeline": PIPELINE_VERSION,
        "seed": seed,
        "features": [f.model_dump() for f in policy.features] if policy.features else None,
        "coverage": policy.coverage,
        "metric": policy.metric,
        "train_on_auto": policy.train_on_auto,
    }
    if policy.target_precision is not None:  # absent otherwise: older settings hashes hold
        out["target_precision"] = policy.target_precision
        out["confidence"] = policy.confidence
    return out


def settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def library_versions() -> dict:
    out: dict[str, str | None] = {"python": platform.python_version()}
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
    """Fits, calibrates, conformalises, chooses the auto-accept rule and evaluates on
    time-ordered held-out human labels, decides promotion, then refits the served model on
    every label (card["served"]); touches no database. `active` is the queue's active
    version as it was when the snapshot was taken (see registry.active_for_comparison), or
    None when the queue has none.
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
    metrics["metric"] = policy.metric
    if policy.target_precision is not None:
        metrics["auto_accept"] = _auto_accept_rule(model, x_all, rows, part, policy)
    answers = _answers(model, x_all, rows, part[EVALUATION])
    settings = training_settings(queue, seed)
    if active is None:
        metrics["compared_with_version_id"] = None
        metrics["promoted"], metrics["promotion_reason"] = _first_model(rows, queue)
    else:
        compare_with_active(
            metrics,
            answers,
            active,
            rows,
            part[EVALUATION],
            policy.metric,
            n_labels=len(rows),
            settings_hash=settings_hash(settings),
        )
    split_model, served_note = model, None
    if not auto_in_train:
        served, served_note = _refit_on_everything(columns, x_all, rows, roles, seed)
        model = served if served is not None else model
    metrics["classes"] = [str(c) for c in model.classes_]
    n_held = len(part[CONFORMAL]) + len(part[EVALUATION])
    served_card = {
        "refit": served_note is None and not auto_in_train,
        "n_labels": sum(1 for role in roles if role != LEFT_OUT),
        "n_held_out": n_held,
        "n_evaluation": len(part[EVALUATION]),
        "note": served_note
        or (
            "not refit: a model trained partly on auto-accepted labels is calibrated on "
            "held-out human labels, so it cannot also train on them"
            if auto_in_train
            else None
        ),
    }
    # The input guard belongs to the model that serves: its feature step is what scoring uses.
    held_out = part[CALIBRATION] + part[CONFORMAL] + part[EVALUATION]
    profile, novelty, novelty_card = _input_guard(model, x_train, x_all[held_out], columns, seed)

    card = {
        "settings": settings,
        "served": served_card,
        "columns": columns,
        "conformal": conformal.as_dict(),
        # Scoring offers the answers the model never saw, and routing auto-accepts nothing
        # while an answer has too few labels (app.routing.decision.MIN_LABELS_PER_ANSWER).
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
        "profile": profile,
        "novelty": novelty_card,
    }
    return Fitted(
        snapshot=snap,
        model=model,
        roles=roles,
        metrics=metrics,
        card=card,
        artifact=artifacts.save(model),
        novelty=novelty,
        held_out_answers=pack_answers(answers),
        split_model=split_model,
    )


# The novelty detector learns from at most this many training rows (it looks at 256 per tree).
NOVELTY_ROWS = 20_000


def _input_guard(model, x_train, x_held_out, columns, seed):
    """(profile of the training inputs, the detector's file or None, what the card says of
    it): what scoring checks each item against (see learning/profile.py, novelty.py)."""
    profile = build_profile(x_train, x_held_out, columns, model)
    rows = x_train
    if len(rows) > NOVELTY_ROWS:
        pick = np.random.default_rng(seed).choice(len(rows), NOVELTY_ROWS, replace=False)
        rows = rows[np.sort(pick)]
    detector, card = fit_novelty(model, rows, x_held_out, seed=seed)
    if detector is None:
        return profile, None, card
    saved = artifacts.save(detector.forest, compressed=True)
    card["sha256"] = saved[1]
    return profile, saved, card


def _count(values) -> dict:
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _auto_accept_rule(model, x_all, rows, part, policy) -> dict:
    """The auto-accept threshold for the queue's target precision, chosen on every held-out
    human label the split model neither trained nor was calibrated on (see auto_accept)."""
    idx = part[CONFORMAL] + part[EVALUATION]
    if not idx:
        return choose_rule(
            np.zeros(0),
            np.zeros(0),
            target_precision=policy.target_precision,
            confidence=policy.confidence,
        )
    proba = model.predict_proba(x_all[idx])
    classes = np.asarray([str(c) for c in model.classes_], dtype=object)
    correct = classes[proba.argmax(axis=1)] == np.asarray([rows[i].target for i in idx])
    return choose_rule(
        proba.max(axis=1),
        correct,
        target_precision=policy.target_precision,
        confidence=policy.confidence,
    )


def _answers(model, x_all, rows, idx: list[int]) -> dict[int, str]:
    """The model's top answer for each of these rows, by example id."""
    if not idx:
        return {}
    classes = [str(c) for c in model.classes_]
    top = model.predict_proba(x_all[idx]).argmax(axis=1)
    return {rows[i].example_id: classes[int(k)] for i, k in zip(idx, top, strict=True)}


def pack_answers(answers: dict[int, str]) -> bytes:
    """Held-out answers as stored in model_version.held_out_answers."""
    ids = list(answers)
    return zlib.compress(json.dumps({"ids": ids, "answers": [answers[i] for i in ids]}).encode())


def unpack_answers(data: bytes | None) -> dict[int, str]:
    if not data:
        return {}
    raw = json.loads(zlib.decompress(data))
    return dict(zip(raw["ids"], raw["answers"], strict=True))


def _first_model(rows, queue: Queue) -> tuple[bool, str]:
    """(promoted, reason) for a queue's first model: only with enough labels per answer."""
    counts = _count(r.target for r in rows if r.source in HUMAN_SOURCES)
    answers = list(queue.labels) if queue.labels else sorted(counts)
    short = [(a, counts.get(a, 0)) for a in answers if counts.get(a, 0) < MIN_LABELS_FIRST_MODEL]
    if not short:
        return True, "first model of the queue"
    missing = ", ".join(f"“{a}” has {n}" for a, n in short)
    return False, (
        f"first model of the queue: kept as a candidate until each answer has at least "
        f"{MIN_LABELS_FIRST_MODEL} human labels ({missing})"
    )


def _refit_on_everything(columns, x_all, rows, roles, seed):
    """(the pipeline refit on every label, None) or (None, why not): the model that serves
    learns from the held-out labels too, once they have chosen thresholds and graded."""
    idx = [i for i, role in enumerate(roles) if role != LEFT_OUT]
    y = [rows[i].target for i in idx]
    try:
        refit, _ = calibrated(build_pipeline(columns, seed), y, seed)
        refit.fit(x_all[idx], y)
    except ValueError as exc:
        return None, f"not refit on every label ({exc}); the split model serves"
    return refit, None
