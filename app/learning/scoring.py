"""Scoring items with the queue's model: calibrated probabilities and conformal candidate
sets, within a time budget (past it, or with no usable model, routing falls back on the
queue's business rules: app.routing.rules)."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlmodel import Session, col

from app.learning import artifacts
from app.learning.conformal import Conformal
from app.learning.features import table
from app.learning.novelty import Novelty, features_step
from app.learning.profile import (
    in_crowded_buckets,
    known_values,
    outside_profile,
    text_vectorizers,
)
from app.models import ModelVersion, Queue, id_of
from app.queues.order import margin_of_probabilities
from app.settings import current_settings

log = logging.getLogger(__name__)
MAX_CANDIDATES = 5
# A set's answers beyond this many are not stored: the reviewer has keys 1-9 (set_size
# keeps the true count, and the page says when some are not shown).
MAX_SET_STORED = 9
# Items scored per call: per-call costs (the novelty forest walks 100 trees per call) fall
# with larger chunks; one chunk of 1,024 takes tens of ms, well inside the time budget.
CHUNK = 1024
_cache: OrderedDict[tuple[int, str], LoadedModel] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class LoadedModel:
    """A stored model version, ready to score."""

    version_id: int
    version: str
    model: Any  # a fitted scikit-learn classifier (no type hints)
    columns: list[dict]  # the payload fields it reads, as features.table() lays them out
    conformal: Conformal | None
    # The drift and novelty guard (see learning/profile.py and novelty.py); empty for
    # versions trained before it existed.
    profile: dict | None = None
    known: dict[str, frozenset] | None = None
    novelty: Novelty | None = None
    # The auto-accept rule chosen for the queue's target precision when it was trained
    # (metrics["auto_accept"]), or None when it was trained without a target.
    auto_accept: dict | None = None
    # Human labels per answer in the data it was built from, with the queue's answers it
    # never saw (0); empty for versions stored before this was recorded.
    labels_per_answer: dict[str, int] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.model.classes_]

    def inputs(self, payloads: list[dict]):
        return table(payloads, self.columns)

    def predict_proba(self, payloads: list[dict]) -> np.ndarray:
        return self.model.predict_proba(self.inputs(payloads))

    def assess(
        self, payloads: list[dict], crowded: dict[str, dict] | None = None
    ) -> tuple[np.ndarray, list[list[dict]]]:
        """(probabilities, per item what makes it unlike the training data): the fields
        outside the training profile, "novelty" when the detector flags the whole item, and,
        while the queue's inputs drift (`crowded`, see learning/drift.py: drift_hold), a value
        where the recent items crowd."""
        x = self.inputs(payloads)
        proba = self.model.predict_proba(x)
        hits = outside_profile(self.profile, self.known or {}, self.columns, x)
        if crowded:
            vectorizers = text_vectorizers(self.model, self.columns)
            held = in_crowded_buckets(self.profile, self.columns, x, crowded, vectorizers)
            for row, more in zip(hits, held, strict=True):
                row.extend(more)
        if self.novelty is not None:
            # Only rows that could be auto-accepted need it (a single-answer set, nothing else
            # found): transforming and walking the forest is most of the guard's cost.
            need = np.array([not h for h in hits], dtype=bool)
            if self.conformal is not None:
                need &= self.conformal.sets(proba, self.classes).sum(axis=1) == 1
            rows = np.flatnonzero(need)
            if len(rows):
                flags = self.novelty.flags(features_step(self.model).transform(x[rows]))
                for i in rows[flags]:
                    hits[i].append(NOVELTY_HIT)
        return proba, hits

    def label_counts(self, queue_labels: list[str] | None = None) -> dict[str, int]:
        """Human labels per answer it was built from, every answer of the queue included."""
        counts = {c: 0 for c in self.classes} | dict(self.labels_per_answer)
        return counts | {a: 0 for a in queue_labels or [] if a not in counts}

    def unseen(self, queue_labels: list[str] | None = None) -> list[str]:
        """The queue's answers the model has never seen (it cannot give them a probability)."""
        known = set(self.classes)
        return [a for a in self.label_counts(queue_labels) if a not in known]

    def candidates(
        self,
        proba: np.ndarray,
        queue_labels: list[str] | None = None,
        unlike: list[list[dict]] | None = None,
    ) -> list[tuple[list[dict], dict | None]]:
        """Per row: the candidate list, best first, and its detail.

        With a conformal threshold the list is the set, never empty (an empty set shows the
        model's best guess, marked so), followed by every answer of the queue the model
        has never seen (score None, "unseen": true); without, the top few answers.
        `unlike` (from assess()) goes into the detail as "drift": routing sends those items
        to a person.
        """
        classes = self.classes
        unseen = self.unseen(queue_labels) if self.conformal else []
        counts = self.label_counts(queue_labels)
        # Unknown counts (no record at all) leave the minimum to the card's own numbers.
        fewest = (
            min(counts.items(), key=lambda kv: (kv[1], kv[0])) if self.labels_per_answer else None
        )
        if self.conformal:
            sets, empty = self.conformal.shown_sets(proba, classes)
        out = []
        for n, row in enumerate(proba):
            order = row.argsort()[::-1]
            drift = {"drift": unlike[n]} if unlike and unlike[n] else {}
            if not self.conformal:
                cands = [
                    {"label": classes[i], "score": round(float(row[i]), 4)}
                    for i in order[:MAX_CANDIDATES]
                ]
                out.append((cands, drift or None))
                continue
            members = [i for i in order if sets[n, i]]
            cands = [{"label": classes[i], "score": round(float(row[i]), 4)} for i in members]
            cands += [{"label": a, "score": None, "unseen": True} for a in unseen]
            detail: dict[str, Any] = {
                "coverage": self.conformal.coverage,
                "set_size": len(cands),
                "mode": self.conformal.mode,
                # The set may hold the top answer alone: the claim order needs the
                # runner-up's distance too (app.queues.order).
                "margin": round(margin_of_probabilities(row), 4),
                **drift,
            }
            if self.auto_accept is not None:
                detail["auto_accept"] = self.auto_accept
            if empty[n]:
                # No answer reached the set's bar: the list shows the best guess anyway.
                detail["best_guess_only"] = True
            if unseen:
                detail["unseen"] = len(unseen)
            if fewest is not None:
                detail["fewest_labels"] = {"answer": fewest[0], "n": fewest[1]}
            out.append((cands[:MAX_SET_STORED], detail))
        return out


NOVELTY_HIT = {
    "field": None,
    "check": "novelty",
    "reason": "the item as a whole is unlike the items the model learned from (novelty check)",
}


def load_version(session: Session, version: ModelVersion) -> LoadedModel:
    """The version's model, loaded once per process (keyed by id and checksum)."""
    version_id = id_of(version)
    key = (version_id, version.artifact_sha256)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    model = artifacts.load(version.artifact, version.artifact_sha256)
    card = version.card or {}
    novelty = card.get("novelty") or {}
    forest = None
    if version.novelty is not None and novelty.get("sha256"):
        forest = artifacts.load(version.novelty, novelty["sha256"])
    loaded = LoadedModel(
        version_id=version_id,
        version=version.version,
        model=model,
        columns=card["columns"],
        conformal=Conformal.from_dict(card.get("conformal")),
        profile=card.get("profile"),
        known=known_values(card.get("profile")),
        novelty=Novelty(forest, novelty.get("threshold")) if forest is not None else None,
        auto_accept=_rule_of(version.metrics or {}),
        # Versions stored before this was recorded: the labels they trained on, per answer.
        labels_per_answer=card.get("labels_per_answer")
        or (card.get("data") or {}).get("train_labels")
        or {},
    )
    with _cache_lock:
        _cache[key] = loaded
        while len(_cache) > 8:
            _cache.popitem(last=False)
    return loaded


def _rule_of(metrics: dict) -> dict | None:
    """What routing needs of the version's auto-accept rule (not its curve)."""
    rule = metrics.get("auto_accept")
    if not rule or rule.get("target_precision") is None:
        return None
    return {k: rule.get(k) for k in ("threshold", "target_precision", "confidence", "why_none")}


def _loaded(session: Session, queue: Queue, version: str | None = None) -> LoadedModel | None:
    cond = col(ModelVersion.active) if version is None else col(ModelVersion.version) == version
    row = session.execute(
        select(col(ModelVersion.id), col(ModelVersion.artifact_sha256)).where(
            col(ModelVersion.queue_id) == queue.id, cond
        )
    ).first()
    if row is None:
        return None
    with _cache_lock:
        hit = _cache.get((row.id, row.artifact_sha256))
    if hit is not None:
        return hit
    return load_version(session, session.get_one(ModelVersion, row.id))


def pipeline_for_version(*, session: Session, queue: Queue, version: str | None):
    """(version id, loaded model) for the queue's version called `version`, or (None, None)
    when it is unknown here (for example a producer's own model)."""
    if not version:
        return None, None
    try:
        loaded = _loaded(session, queue, version)
    except artifacts.ArtifactError:
        log.exception("model %s of queue %s cannot be loaded", version, queue.name)
        return None, None
    return (loaded.version_id, loaded) if loaded else (None, None)


def active_model(*, session: Session, queue: Queue) -> tuple[LoadedModel | None, str | None]:
    """(the queue's active model, None), or (None, why there is none to use)."""
    try:
        loaded = _loaded(session, queue)
    except artifacts.ArtifactError as exc:
        log.exception("active model of queue %s cannot be loaded", queue.name)
        return None, f"the active model cannot be loaded ({exc})"
    return (loaded, None) if loaded is not None else (None, "no trained model yet")


@dataclass(frozen=True)
class Scores:
    """One row per payload the model answered, in order: (candidates, model version, detail,
    "model"); the payloads after the first `model_answered` were not scored, and
    `fallback_reason` says why."""

    rows: list[tuple[list[dict] | None, str | None, dict | None, str]]
    model_answered: int
    fallback_reason: str | None


def score_payloads(
    *,
    session: Session,
    queue: Queue,
    payloads: list[dict],
    budget_seconds: float | None = None,
    crowded: dict[str, dict] | None = None,
) -> Scores:
    """The queue's model scores the payloads in chunks while the time budget lasts; the rest
    (all of them when there is no usable model) are left to the caller's fallback.
    `crowded`: the drifted features' crowded buckets (learning/drift.py: drift_hold), used
    when they were measured against the version that scores."""
    if budget_seconds is None:
        budget_seconds = current_settings().scoring_budget_seconds
    started = time.perf_counter()
    rows: list = []
    reason = None
    model, reason = active_model(session=session, queue=queue)
    if model is not None:
        held = None
        if crowded and crowded.get("version_id") == model.version_id:
            held = crowded["features"]
        try:
            for start in range(0, len(payloads), CHUNK):
                if time.perf_counter() - started > budget_seconds:
                    reason = f"the model did not answer within {budget_seconds:g} s"
                    break
                chunk = payloads[start : start + CHUNK]
                proba, unlike = model.assess(chunk, held)
                for cands, detail in model.candidates(proba, queue.labels, unlike):
                    rows.append((cands, model.version, detail, "model"))
        except Exception:  # noqa: BLE001 - a failing model must not lose the batch
            log.exception("model %s failed to score queue %s", model.version, queue.name)
            reason = f"model {model.version} failed to score"
            rows = []
    log.debug("scored %d items in %.3fs", len(payloads), time.perf_counter() - started)
    return Scores(rows=rows, model_answered=len(rows), fallback_reason=reason)
