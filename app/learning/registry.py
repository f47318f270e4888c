"""The model registry: storing a fitted version, making one active (by a training run,
a promotion or a roll-back), versions and their cards, training runs."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from sqlalchemy import any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT
from sqlalchemy.orm import defer
from sqlmodel import Session, col

from app.db import dumps_json
from app.errors import Conflict, NotFound
from app.learning import artifacts
from app.learning.evaluation import Active
from app.learning.fitting import Fitted, TrainingFailed, settings_hash, unpack_answers
from app.learning.scoring import load_version
from app.learning.snapshot import LEFT_OUT, ROLES, TRAIN, Snapshot, pack_ids, unpack_ids
from app.models import (
    Item,
    ModelVersion,
    Outbox,
    Queue,
    TrainingExample,
    TrainingRun,
    TrainingSnapshot,
    id_of,
    utcnow,
)
from app.queues.service import TRAINABLE_SOURCES
from app.routing.decision import MIN_LABELS_PER_ANSWER
from app.states import OutboxKind, RunStatus


def active_version(session: Session, queue_id: int) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(col(ModelVersion.queue_id) == queue_id, col(ModelVersion.active))
    )


def active_for_comparison(session: Session, queue_id: int) -> Active | None:
    """The queue's active version, ready to be graded against a new one; None if none."""
    current = active_version(session, queue_id)
    if current is None:
        return None
    try:
        loaded = load_version(session, current)
    except artifacts.ArtifactError as exc:
        return Active(id_of(current), None, None, str(exc))
    trained_on = None
    if current.snapshot_id is not None:
        snap = session.get_one(TrainingSnapshot, current.snapshot_id)
        ids = unpack_ids(snap.example_ids, np.int64)
        roles = unpack_ids(snap.roles, np.uint8)
        # A refit model trained on every label of its snapshot, an older one on its TRAIN part.
        refit = ((current.card or {}).get("served") or {}).get("refit")
        trained_on = frozenset(ids[roles != LEFT_OUT if refit else roles == TRAIN].tolist())
    return Active(
        id_of(current),
        loaded,
        trained_on,
        held_out=unpack_answers(current.held_out_answers),
        n_labels=current.n_examples,
        settings_hash=current.settings_hash,
    )


def snapshot_is_new(*, session: Session, queue_id: int, snap: Snapshot, settings: str) -> bool:
    """False when a version was already trained on this snapshot with these settings (a
    settings hash): training it again would make the same model."""
    return (
        session.scalar(
            select(col(ModelVersion.id)).where(
                col(ModelVersion.queue_id) == queue_id,
                col(ModelVersion.snapshot) == snap.content_hash,
                col(ModelVersion.settings_hash) == settings,
            )
        )
        is None
    )


def store(*, session: Session, queue: Queue, fitted: Fitted) -> ModelVersion | None:
    """Saves the snapshot and the version, marks its examples as used, and promotes it if it
    earned that.

    Returns None when the snapshot already has a version. Raises TrainingFailed when some
    of its labels were reopened while it trained: that model saw answers that are gone.
    """
    snap = fitted.snapshot
    settings = settings_hash(fitted.card["settings"])
    if not snapshot_is_new(session=session, queue_id=id_of(queue), snap=snap, settings=settings):
        return None
    data, sha = fitted.artifact
    # The same rows trained again with other settings share their snapshot.
    snapshot = session.scalar(
        select(TrainingSnapshot).where(
            col(TrainingSnapshot.queue_id) == queue.id,
            col(TrainingSnapshot.content_hash) == snap.content_hash,
        )
    )
    if snapshot is None:
        snapshot = TrainingSnapshot(
            queue_id=id_of(queue),
            content_hash=snap.content_hash,
            example_ids=pack_ids(snap.ids, np.int64),
            roles=pack_ids(fitted.roles, np.uint8),
        )
        session.add(snapshot)
        session.flush()
    n_versions = session.scalar(
        select(func.count()).select_from(ModelVersion).where(col(ModelVersion.queue_id) == queue.id)
    )
    version = ModelVersion(
        queue_id=id_of(queue),
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
        novelty=fitted.novelty[0] if fitted.novelty else None,
        held_out_answers=fitted.held_out_answers,
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
            .where(member, col(TrainingExample.used_by_version_id).is_(None))
            .values(used_by_version_id=version.id)
        )
        still_there += session.scalars(
            select(func.count()).select_from(TrainingExample).where(member)
        ).one()
    if still_there != len(ids):
        raise TrainingFailed(
            f"{len(ids) - still_there} labels were reopened during training; run again"
        )
    current = active_version(session, id_of(queue))
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


def _id_in(session: Session, ids: list[int]):
    """`training_example.id IN ids`; one array parameter on PostgreSQL, where ten thousand
    bound values cost seconds to build and send."""
    if session.get_bind().dialect.name == "postgresql":
        return col(TrainingExample.id) == any_(bindparam("ids", value=ids, type_=ARRAY(BIGINT)))
    return col(TrainingExample.id).in_(ids)


def activate(*, session: Session, version: ModelVersion, by: str) -> int:
    """Makes this the queue's only active version; `by` says who or what did it.

    Promises, in the same transaction, that the waiting items will be re-scored by it: the
    id of that outbox row is returned, for the caller to hand over after commit.
    """
    session.execute(
        update(ModelVersion)
        .where(col(ModelVersion.queue_id) == version.queue_id, col(ModelVersion.id) != version.id)
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
    return id_of(rescore)


def versions_of(*, session: Session, queue: Queue) -> list[ModelVersion]:
    """The queue's versions, newest first (artifacts are not loaded)."""
    return list(
        session.scalars(
            select(ModelVersion)
            # SQLModel types these columns as bytes: they are the attributes defer() takes.
            .options(
                defer(ModelVersion.artifact),  # type: ignore[arg-type]
                defer(ModelVersion.novelty),  # type: ignore[arg-type]
                defer(ModelVersion.held_out_answers),  # type: ignore[arg-type]
            )
            .where(col(ModelVersion.queue_id) == queue.id)
            .order_by(col(ModelVersion.id).desc())
        )
    )


def get_version(*, session: Session, queue: Queue, version: str) -> ModelVersion:
    row = session.scalar(
        select(ModelVersion).where(
            col(ModelVersion.queue_id) == queue.id, col(ModelVersion.version) == version
        )
    )
    if row is None:
        raise NotFound(f"Queue {queue.name!r} has no model version {version!r}.")
    return row


def version_status(version: ModelVersion) -> str:
    """active, candidate (never promoted) or retired (was active before)."""
    if version.active:
        return "active"
    return "retired" if version.activated_at is not None else "candidate"


def version_json(version: ModelVersion) -> dict:
    """The public description of a version (the API contract's fields first)."""
    metrics = version.metrics or {}
    card = version.card or {}
    return {
        "version": version.version,
        "active": version.active,
        "created_at": version.created_at.isoformat(),
        "snapshot": version.snapshot,
        "metrics": metrics,
        "status": version_status(version),
        "n_examples": version.n_examples,
        "activated_at": version.activated_at.isoformat() if version.activated_at else None,
        "activated_by": version.activated_by,
        "promotion_reason": metrics.get("promotion_reason"),
        "card": card,
        "artifact_sha256": version.artifact_sha256,
    }


def promote(*, session: Session, queue: Queue, version: str, user) -> ModelVersion:
    """Makes the named version the active one (also how a person rolls back)."""
    row = get_version(session=session, queue=queue, version=version)
    if row.active:
        raise Conflict(f"{version} is already the active model.")
    activate(session=session, version=row, by=f"promoted by {user.name}")
    return row


def previous_active(*, session: Session, queue: Queue) -> ModelVersion | None:
    """The version that was active most recently before the current one, if any."""
    return session.scalar(
        select(ModelVersion)
        .where(
            col(ModelVersion.queue_id) == queue.id,
            col(ModelVersion.activated_at).is_not(None),
            col(ModelVersion.active).is_(False),
        )
        .order_by(col(ModelVersion.activated_at).desc())
        .limit(1)
    )


def rollback(*, session: Session, queue: Queue, user) -> ModelVersion:
    """Re-activates the version that was active before the current one (rolling back twice
    returns to where it started)."""
    previous = previous_active(session=session, queue=queue)
    if previous is None:
        raise Conflict("There is no earlier active version to roll back to.")
    activate(session=session, version=previous, by=f"rolled back by {user.name}")
    return previous


def start_run(*, session: Session, queue_id: int, trigger: str) -> TrainingRun:
    run = TrainingRun(queue_id=queue_id, trigger=trigger[:200], status=RunStatus.RUNNING)
    session.add(run)
    session.flush()
    return run


def finish_run(
    *, session: Session, run_id: int, status: RunStatus, message: str | None, version_id=None
) -> None:
    session.execute(
        update(TrainingRun)
        .where(col(TrainingRun.id) == run_id)
        .values(
            status=status,
            message=(message or "")[:2000] or None,
            version_id=version_id,
            finished_at=utcnow(),
        )
    )


def runs_of(*, session: Session, queue: Queue, limit: int = 20) -> list[TrainingRun]:
    return list(
        session.scalars(
            select(TrainingRun)
            .where(col(TrainingRun.queue_id) == queue.id)
            .order_by(col(TrainingRun.started_at).desc(), col(TrainingRun.id).desc())
            .limit(limit)
        )
    )


def run_json(run: TrainingRun, versions: dict[int, str]) -> dict:
    return {
        "trigger": run.trigger,
        "status": run.status,
        "message": run.message,
        "version": versions.get(run.version_id) if run.version_id else None,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def fail_abandoned_runs(*, session: Session, alive, now=None) -> int:
    """Marks as failed the runs whose worker died: still running while nobody holds their
    queue's lock (`alive(queue_id)` says whether it is held). A run records itself only
    once it holds the lock, and finishes before it lets go, so this cannot catch a live one.
    """
    now = now or utcnow()
    stale = session.scalars(
        select(TrainingRun).where(col(TrainingRun.status) == RunStatus.RUNNING)
    ).all()
    n = 0
    for run in stale:
        if not alive(run.queue_id):
            run.status = RunStatus.FAILED
            run.message = "the worker stopped during the run (killed or crashed)"
            run.finished_at = now
            n += 1
    session.flush()
    return n


def schedule_due(*, session: Session, queue: Queue, every_hours: float, now=None) -> bool:
    """True when the queue's schedule says retrain: the last run began `every_hours` ago or
    more, and some human labels have not been trained on yet."""
    if not every_hours:
        return False
    now = now or utcnow()
    last_run = session.scalar(
        select(func.max(col(TrainingRun.started_at))).where(col(TrainingRun.queue_id) == queue.id)
    )
    if last_run is not None and now - last_run < timedelta(hours=every_hours):
        return False
    unseen = session.scalar(
        select(col(TrainingExample.id))
        .where(
            col(TrainingExample.queue_id) == queue.id,
            col(TrainingExample.used_by_version_id).is_(None),
            col(TrainingExample.source).in_(TRAINABLE_SOURCES),
        )
        .limit(1)
    )
    return unseen is not None


def stream_snapshot(*, session: Session, snapshot_id: int, chunk: int = 2000):
    """The snapshot's rows as JSON lines, in snapshot order, each with its part in the run."""
    snap = session.get_one(TrainingSnapshot, snapshot_id)
    ids = unpack_ids(snap.example_ids, np.int64).tolist()
    roles = unpack_ids(snap.roles, np.uint8).tolist()
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        found = {
            r.id: r
            for r in session.execute(
                select(
                    col(TrainingExample.id),
                    col(Item.external_id),
                    col(TrainingExample.target),
                    col(TrainingExample.source),
                    col(TrainingExample.decided_at),
                    col(TrainingExample.label_id),
                )
                .join(Item, col(Item.id) == col(TrainingExample.item_id))
                .where(col(TrainingExample.id).in_(part))
            )
        }
        lines = []
        for example_id, role in zip(part, roles[start : start + chunk], strict=True):
            r = found.get(example_id)
            lines.append(
                dumps_json(
                    {
                        "example_id": example_id,
                        "external_id": r.external_id if r else None,
                        "label": r.target if r else None,
                        "source": r.source if r else None,
                        "decided_at": r.decided_at.isoformat() if r else None,
                        "part": ROLES[role],
                    }
                )
            )
        yield "\n".join(lines) + "\n"


def card_limitations(version: ModelVersion) -> list[str]:
    """What a reader of the card should be careful about, from the version's own numbers."""
    m, c = version.metrics or {}, version.card or {}
    out = []
    n_eval = m.get("n_eval", 0)
    if n_eval and n_eval < 200:
        out.append(
            f"Graded on only {n_eval} held-out labels: its metrics could move by several "
            "points on other data."
        )
    for label, stats in (m.get("per_class") or {}).items():
        if stats.get("support", 0) and stats["support"] < 20:
            out.append(
                f"Few held-out examples of “{label}” ({stats['support']}): its figures are rough."
            )
        elif stats.get("recall", 1) < 0.5 and stats.get("support", 0):
            out.append(
                f"Finds fewer than half of the “{label}” items ({stats['recall']:.0%} recall): "
                "keep a person on them."
            )
    coverage, target = m.get("coverage"), m.get("coverage_target")
    if coverage is not None and target is not None and coverage < target - 0.02:
        out.append(
            f"Its candidate sets held the right answer {coverage:.1%} of the time, short of the "
            f"{target:.0%} asked: newer data may differ from what it was calibrated on."
        )
    note = (c.get("conformal") or {}).get("note")
    if note:
        out.append(f"Candidate sets: {note}.")
    if not c.get("calibration") or not c["calibration"].get("method"):
        out.append("Its scores are not calibrated (too few labels per answer).")
    known = {str(k) for k in m.get("classes") or []}
    counts = c.get("labels_per_answer") or {}
    never = sorted(a for a in counts if known and a not in known)
    if never:
        out.append(
            f"It has never seen {', '.join(f'“{a}”' for a in never)}: listed as candidates "
            "on every item, and nothing is auto-accepted until a model has learnt them."
        )
    few = sorted((n, a) for a, n in counts.items() if a not in never and n < MIN_LABELS_PER_ANSWER)
    if few:
        out.append(
            f"“{few[0][1]}” has {few[0][0]} human labels, fewer than the "
            f"{MIN_LABELS_PER_ANSWER} every answer needs: nothing is auto-accepted."
        )
    if c.get("train_on_auto"):
        out.append(
            "Trained partly on auto-accepted labels, that is on earlier models' own answers: "
            "their mistakes can be learned again."
        )
    out.append(
        "It has only seen the payload fields listed under Data; it knows nothing of what is "
        "outside the payload, and labels it has never been shown cannot be predicted."
    )
    return out
