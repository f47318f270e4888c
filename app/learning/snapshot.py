"""The rows a training run reads, and their split by time.

A run splits its snapshot by time. Human labels only grade and calibrate: the newest 20%
evaluate the new model (and the active one, on the rows it never trained on), the 20%
before them set the conformal threshold, and everything older trains. Auto-accepted labels
can join the training part when the queue allows it, never the held-out parts.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlmodel import Session, col

from app.models import Label, TrainingExample
from app.queues.service import HUMAN_SOURCES
from app.states import LabelSource

HOLDOUT_SHARE = 0.2
CONFORMAL_SHARE = 0.2
TRAIN, CONFORMAL, EVALUATION, LEFT_OUT, CALIBRATION = 0, 1, 2, 3, 4
ROLES = ("train", "conformal", "evaluation", "left_out", "calibration")


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


def hash_rows(rows: list[Row]) -> str:
    """SHA-256 of the rows' ids, payloads, labels and sources, in order."""
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
            col(TrainingExample.id),
            col(TrainingExample.features),
            col(TrainingExample.target),
            col(TrainingExample.source),
            col(TrainingExample.decided_at),
            col(Label.model_label),
            col(Label.model_feedback),
        )
        .join(Label, col(Label.id) == col(TrainingExample.label_id))
        .where(col(TrainingExample.queue_id) == queue_id, col(TrainingExample.source).in_(sources))
        .order_by(col(TrainingExample.decided_at), col(TrainingExample.id))
    )
    rows: list[Row] = []
    shaping: dict[str, Any] = {"human_labels": 0, "corrected_model": 0, "feedback": {}}
    for r in result:
        rows.append(Row(r[0], r[1], r[2], r[3], r[4]))
        if r[3] in HUMAN_SOURCES:
            shaping["human_labels"] += 1
            if r[5] is not None and r[5] != r[2]:
                shaping["corrected_model"] += 1
            if r[6]:
                shaping["feedback"][r[6]] = shaping["feedback"].get(r[6], 0) + 1
    return Snapshot(rows=rows, content_hash=hash_rows(rows), shaping=shaping)


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
    """Ids or roles as stored in training_snapshot: a zlib-compressed numpy array."""
    return zlib.compress(np.asarray(values, dtype=dtype).tobytes())


def unpack_ids(data: bytes, dtype) -> np.ndarray:
    return np.frombuffer(zlib.decompress(data), dtype=dtype)
