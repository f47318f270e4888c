"""Scoring items that arrive without a prediction, with the queue's active model."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from app.learning import artifacts
from app.learning.features import features_of
from app.models import ModelVersion, Queue

log = logging.getLogger(__name__)
MAX_CANDIDATES = 5
_cache: OrderedDict[str, object] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class Scored:
    version: str
    candidates: list[list[dict]]


def _pipeline_for(session: Session, queue: Queue, version: str | None = None):
    """(id, version, pipeline) of the queue's active (or named) version, loaded once per
    process; Nones when there is none."""
    cond = ModelVersion.active if version is None else ModelVersion.version == version
    row = session.execute(
        select(ModelVersion.id, ModelVersion.version, ModelVersion.artifact_sha256).where(
            ModelVersion.queue_id == queue.id, cond
        )
    ).first()
    if row is None:
        return None, None, None
    key = row.artifact_sha256
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return row.id, row.version, _cache[key]
    artifact = session.scalar(select(ModelVersion.artifact).where(ModelVersion.id == row.id))
    pipeline = artifacts.load(artifact, row.artifact_sha256)
    with _cache_lock:
        _cache[key] = pipeline
        while len(_cache) > 8:
            _cache.popitem(last=False)
    return row.id, row.version, pipeline


def pipeline_for_version(*, session: Session, queue: Queue, version: str | None):
    """(version id, pipeline) for the queue's version called `version`, or (None, None)
    when it is unknown here (for example a producer's own model)."""
    if not version:
        return None, None
    try:
        vid, _name, pipeline = _pipeline_for(session, queue, version)
    except artifacts.ArtifactError:
        log.exception("model %s of queue %s cannot be loaded", version, queue.name)
        return None, None
    return vid, pipeline


def score_payloads(*, session: Session, queue: Queue, payloads: list[dict]) -> Scored | None:
    """Candidates from the active model for each payload, best first; None when there is
    no usable model, so the items go to review instead of being lost."""
    try:
        _vid, version, pipeline = _pipeline_for(session, queue)
    except artifacts.ArtifactError:
        log.exception("active model of queue %s cannot be loaded", queue.name)
        return None
    if pipeline is None:
        return None
    started = time.perf_counter()
    probabilities = pipeline.predict_proba([features_of(p) for p in payloads])
    classes = [str(c) for c in pipeline.classes_]
    out = []
    for row in probabilities:
        order = row.argsort()[::-1][:MAX_CANDIDATES]
        out.append([{"label": classes[i], "score": round(float(row[i]), 4)} for i in order])
    log.debug("scored %d items in %.3fs", len(payloads), time.perf_counter() - started)
    return Scored(version=version, candidates=out)
