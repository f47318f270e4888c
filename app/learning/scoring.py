"""Scoring items with the queue's model: calibrated probabilities and conformal candidate
sets, within a time budget; past it, or with no usable model, the queue's business rules."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlmodel import Session

from app.learning import artifacts
from app.learning.conformal import Conformal
from app.learning.features import table
from app.learning.rules import rule_answer
from app.models import ModelVersion, Queue
from app.settings import current_settings

log = logging.getLogger(__name__)
MAX_CANDIDATES = 5
# A set's answers beyond this many are not stored: the reviewer has keys 1-9 (set_size
# keeps the true count, and the page says when some are not shown).
MAX_SET_STORED = 9
CHUNK = 256
# The queue's own model auto-accepts nothing until every answer of the queue has at least
# this many human labels in the data the model was built from (routing reads the fewest,
# given in each set's detail): below it, per-answer figures rest on too few labels.
MIN_LABELS_PER_ANSWER = 20
_cache: OrderedDict[tuple[int, str], LoadedModel] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class LoadedModel:
    """A stored model version, ready to score."""

    version_id: int
    version: str
    model: object
    columns: list[dict]  # the payload fields it reads, as features.table() lays them out
    conformal: Conformal | None
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

    def label_counts(self, queue_labels: list[str] | None = None) -> dict[str, int]:
        """Human labels per answer it was built from, every answer of the queue included."""
        counts = {c: 0 for c in self.classes} | dict(self.labels_per_answer)
        return counts | {a: 0 for a in queue_labels or [] if a not in counts}

    def unseen(self, queue_labels: list[str] | None = None) -> list[str]:
        """The queue's answers the model has never seen (it cannot give them a probability)."""
        known = set(self.classes)
        return [a for a in self.label_counts(queue_labels) if a not in known]

    def candidates(
        self, proba: np.ndarray, queue_labels: list[str] | None = None
    ) -> list[tuple[list[dict], dict | None]]:
        """Per row: the candidate list, best first, and its detail.

        With a conformal threshold the list is the set, never empty (an empty set shows the
        model's best guess, marked so), followed by every answer of the queue the model
        has never seen (score None, "unseen": true); without, the top few answers.
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
            if not self.conformal:
                cands = [
                    {"label": classes[i], "score": round(float(row[i]), 4)}
                    for i in order[:MAX_CANDIDATES]
                ]
                out.append((cands, None))
                continue
            members = [i for i in order if sets[n, i]]
            cands = [{"label": classes[i], "score": round(float(row[i]), 4)} for i in members]
            cands += [{"label": a, "score": None, "unseen": True} for a in unseen]
            detail = {
                "coverage": self.conformal.coverage,
                "set_size": len(cands),
                "mode": self.conformal.mode,
            }
            if empty[n]:
                # No answer reached the set's bar: the list shows the best guess anyway.
                detail["best_guess_only"] = True
            if unseen:
                detail["unseen"] = len(unseen)
            if fewest is not None:
                detail["fewest_labels"] = {"answer": fewest[0], "n": fewest[1]}
            out.append((cands[:MAX_SET_STORED], detail))
        return out


def load_version(session: Session, version: ModelVersion) -> LoadedModel:
    """The version's model, loaded once per process (keyed by id and checksum)."""
    key = (version.id, version.artifact_sha256)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    model = artifacts.load(version.artifact, version.artifact_sha256)
    card = version.card or {}
    loaded = LoadedModel(
        version_id=version.id,
        version=version.version,
        model=model,
        columns=card["columns"],
        conformal=Conformal.from_dict(card.get("conformal")),
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


def _loaded(session: Session, queue: Queue, version: str | None = None) -> LoadedModel | None:
    cond = ModelVersion.active if version is None else ModelVersion.version == version
    row = session.execute(
        select(ModelVersion.id, ModelVersion.artifact_sha256).where(
            ModelVersion.queue_id == queue.id, cond
        )
    ).first()
    if row is None:
        return None
    with _cache_lock:
        hit = _cache.get((row.id, row.artifact_sha256))
    if hit is not None:
        return hit
    return load_version(session, session.get(ModelVersion, row.id))


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
    """One entry per payload: (candidates or None, model version or None, detail, source)."""

    rows: list[tuple[list[dict] | None, str | None, dict | None, str]]
    model_answered: int
    fallback_reason: str | None


def score_payloads(
    *, session: Session, queue: Queue, payloads: list[dict], budget_seconds: float | None = None
) -> Scores:
    """The queue's model scores the payloads in chunks while the time budget lasts; the rest
    (all of them when there is no usable model) get the queue's business-rule answer."""
    if budget_seconds is None:
        budget_seconds = current_settings().scoring_budget_seconds
    started = time.perf_counter()
    rows: list = []
    reason = None
    model, reason = active_model(session=session, queue=queue)
    if model is not None:
        try:
            for start in range(0, len(payloads), CHUNK):
                if time.perf_counter() - started > budget_seconds:
                    reason = f"the model did not answer within {budget_seconds:g} s"
                    break
                chunk = payloads[start : start + CHUNK]
                for cands, detail in model.candidates(model.predict_proba(chunk), queue.labels):
                    rows.append((cands, model.version, detail, "model"))
        except Exception:  # noqa: BLE001 - a failing model must not lose the batch
            log.exception("model %s failed to score queue %s", model.version, queue.name)
            reason = f"model {model.version} failed to score"
            rows = []
    answered = len(rows)
    if answered < len(payloads):
        rules = (queue.policy or {}).get("rules") or []
        for payload in payloads[answered:]:
            answer = rule_answer(rules, payload)
            if answer is None:
                rows.append((None, None, {"fallback": reason}, "rule"))
            else:
                rule, label = answer
                rows.append(
                    (
                        [{"label": label, "score": None}],
                        "rules",
                        {"fallback": reason, "rule": rule},
                        "rule",
                    )
                )
    log.debug("scored %d items in %.3fs", len(payloads), time.perf_counter() - started)
    return Scores(rows=rows, model_answered=answered, fallback_reason=reason)
