"""Retraining benchmark: one retraining run on 10,000 and 100,000 labelled examples, phase by
phase, against fitting the bare pipeline once; and re-scoring throughput against the raw model.

Run by hand (not part of the test suite):

    .venv/bin/python bench/retrain.py [--backend sqlite|postgresql|both]
                                      [--sizes 10000,100000] [--rescore 50000]
                                      [--no-single-thread] [--no-docs]

For each backend it migrates a fresh database and, per size, creates a queue
(`app.queues.service.create_queue`, default policy: 95% coverage, macro F1, no training on
auto-accepted labels) and fills it, untimed, with generated claims
(`app.demo.claims.generate_claims`): per claim an `item` row (status `done`), a `final_label`
row (source `human`) and a `training_example` row (features = the payload, target = the label,
source `human`, `decided_at` one second after the previous one), bulk-inserted with explicit
ids through `app.bulk.insert_rows`.

Retraining: one run is timed in a fresh child process (so its peak RSS is its own), the
modules imported and the heap settled first as `loupe worker` does, then one call of
`app.learning.training.train_model_version` on the engine, as the retraining job makes it,
whose three steps it times itself: *snapshot* (read sessions: `take_snapshot`, the settings
hash, `snapshot_is_new`, `active_for_comparison`), *fit* (`app.learning.fitting.fit`:
time-ordered split, column choice and feature table, the split model = the ColumnTransformer
+ logistic regression pipeline inside temperature calibration with 5-fold CV, the MAPIE
conformal sets per answer, evaluation, the auto-accept rule when the queue has a target
precision (the default policy has none), the promotion gate (paired bootstrap against the
active model, or the first-model rule), the refit of the served model on every label, the
input profile and the IsolationForest novelty detector, the model card and the skops saves)
and *store* (write session: snapshot and version rows, examples marked as used, promotion).
Inside `fit`, the parts are timed by wrapping the functions `fit` calls (module attributes,
in the child only; each part is its function's own time, nested wrapped calls taken off);
the split model's calibrated fit is the card's `fit_seconds` minus the feature table; the
statements on `training_example` during the store (marking the examples as used) are timed
with SQLAlchemy execute events. The peak RSS is the child's VmHWM right after the run (not
`ru_maxrss`, which Linux carries over from the parent through fork and exec). Baseline, in
the same child after the run: `build_pipeline(columns, seed).fit(x_train, y_train)` once on
the same training rows (the feature table built before its clock starts), no calibration,
conformal step, evaluation, refit or input guard (two more bare fits follow, only to show
the spread). Ratio = run total ÷ bare fit. Unless `--no-single-thread`, each run is repeated
on a second queue holding the same rows with the child started under
`OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1` (the app sets no thread limit).

Re-scoring: the model trained on the first size is the queue's active model; `--rescore`
generated claims are inserted as `pending` items with no prediction rows, then
`app.learning.rescoring.rescore_queue` is timed (in this process; its first batch loads the
model and its novelty detector from their skops bytes, as a fresh work-horse would; each
batch is scored with the input guard and its items routed again). Afterwards every inserted
item must have exactly one prediction, from that version and of source `model`, and be
pending or auto-accepted with an `auto` label (asserted). Baseline: the
same payloads, already in memory as dicts, through the loaded model's
`candidates(predict_proba(payloads))` in one call, best of 3 (also in slices of 1,000, for
comparison). Ratio = re-scoring items/s ÷ raw items/s (one call). The parts of the re-scoring
time come from wrapping the functions `rescore_batch` calls.

The tables are printed and written between the `<!-- retrain:start -->` /
`<!-- retrain:end -->` markers of docs/BENCHMARKS.md. No Redis is needed.

PostgreSQL: `postgresql://postgres@127.0.0.1:5432/loupe_bench` (trust auth, override with
BENCH_PG_URL), created when missing; its `public` schema is dropped before and after the run,
so never point it at a database a test run is using. After each bulk setup the script runs
`VACUUM ANALYZE` (untimed), as autovacuum would after inserts this size. SQLite runs in a
temporary instance folder, removed at the end.
"""

# ruff: noqa: T201  (a command-line report: printing is its job)
from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # the shared helpers of bench/ingest.py

from ingest import (  # noqa: E402
    PG_URL,
    machine_info,
    pg_version,
    reset_pg_schema,
    tear_down,
    write_docs,
)

START, END = "<!-- retrain:start -->", "<!-- retrain:end -->"
TRAIN_SEED = 11  # generate_claims seed of the labelled examples
PENDING_SEED = 23  # ... of the items waiting to be re-scored
MODEL_SEED = 0  # what the retraining job passes by default
CHILD_FLAG = "--_train-child"
# The comparison run: the same retraining with OpenBLAS (and any OpenMP pool) on one thread.
SINGLE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
BARE_REPEATS = 3  # bare fits per child: the first is the baseline, all show the spread


def app_pg_url() -> str:
    """The bench database as the app names it (psycopg 3 driver)."""
    return PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB.

    VmHWM from /proc/self/status: the high-water mark of this process image. Not
    `getrusage(RUSAGE_SELF).ru_maxrss`, which Linux carries over through fork and exec, so a
    child started by a parent holding the generated data would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ---------------------------------------------------------------------------------------------
# Setup (untimed)


def _next_ids(session, tables: list[str]) -> dict[str, int]:
    from sqlalchemy import text

    return {
        t: session.execute(text(f"SELECT coalesce(max(id), 0) + 1 FROM {t}")).scalar_one()
        for t in tables
    }


def _sync_sequences(engine, tables: list[str]) -> None:
    """PostgreSQL: moves each serial past the explicit ids, as if the rows had used it."""
    if engine.dialect.name != "postgresql":
        return
    from sqlalchemy import text

    with engine.begin() as c:
        for t in tables:
            c.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{t}', 'id'),"
                    f" (SELECT coalesce(max(id), 1) FROM {t}))"
                )
            )


def _analyze(engine) -> None:
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("VACUUM ANALYZE")


def insert_labelled(engine, queue_id: int, claims: list[dict]) -> None:
    """Items (done), human final labels and training examples, decided one second apart."""
    from app.bulk import insert_rows
    from app.db import session_scope
    from app.models import UNRANKED, Item, Label, TrainingExample

    tables = ["item", "final_label", "training_example"]
    now = datetime.now(UTC)
    first = now - timedelta(seconds=len(claims) + 60)
    with session_scope(engine) as s:
        ids = _next_ids(s, tables)
        items, labels, examples = [], [], []
        for n, c in enumerate(claims):
            item_id, label_id = ids["item"] + n, ids["final_label"] + n
            decided = first + timedelta(seconds=n)
            items.append(
                {
                    "id": item_id,
                    "queue_id": queue_id,
                    "external_id": c["external_id"],
                    "payload": c["payload"],
                    "status": "done",
                    "priority": 0,
                    "route_decision": "review",
                    "route_reason": None,
                    "created_at": decided - timedelta(seconds=30),
                    "uncertainty_rank": UNRANKED,
                }
            )
            labels.append(
                {
                    "id": label_id,
                    "item_id": item_id,
                    "queue_id": queue_id,
                    "value": c["label"],
                    "source": "human",
                    "reviewers": ["bench-reviewer"],
                    "decided_at": decided,
                }
            )
            examples.append(
                {
                    "id": ids["training_example"] + n,
                    "queue_id": queue_id,
                    "label_id": label_id,
                    "item_id": item_id,
                    "features": c["payload"],
                    "target": c["label"],
                    "source": "human",
                    "decided_at": decided,
                    "created_at": decided,
                }
            )
        insert_rows(session=s, table=Item.__table__, rows=items, json_columns=("payload",))
        insert_rows(session=s, table=Label.__table__, rows=labels, json_columns=("reviewers",))
        insert_rows(
            session=s,
            table=TrainingExample.__table__,
            rows=examples,
            json_columns=("features",),
        )
    _sync_sequences(engine, tables)
    _analyze(engine)


def insert_pending(engine, queue_id: int, claims: list[dict]) -> None:
    """Items waiting for review, scored by no model: status pending, no prediction rows."""
    from app.bulk import insert_rows
    from app.db import session_scope
    from app.models import UNRANKED, Item

    now = datetime.now(UTC)
    with session_scope(engine) as s:
        first = _next_ids(s, ["item"])["item"]
        rows = [
            {
                "id": first + n,
                "queue_id": queue_id,
                "external_id": f"pending-{n + 1:07d}",
                "payload": c["payload"],
                "status": "pending",
                "priority": 0,
                "route_decision": "review",
                "route_reason": None,
                "created_at": now,
                "uncertainty_rank": UNRANKED,  # no prediction yet: last in the order
            }
            for n, c in enumerate(claims)
        ]
        insert_rows(session=s, table=Item.__table__, rows=rows, json_columns=("payload",))
    _sync_sequences(engine, ["item"])
    _analyze(engine)


# ---------------------------------------------------------------------------------------------
# One retraining run, in a child process


def _touches(clauseelement, table: str) -> bool:
    """Whether a Core/ORM statement writes to or reads from `table` (by its FROM list)."""
    target = getattr(clauseelement, "table", None)
    if getattr(target, "name", None) == table:
        return True
    froms = getattr(clauseelement, "get_final_froms", None)
    return bool(froms) and any(getattr(f, "name", None) == table for f in froms())


class _StatementClock:
    """Time spent in `Connection.execute` (compiling included) on statements touching a table,
    while `on` is set."""

    def __init__(self, engine, table: str):
        from sqlalchemy import event

        self.table, self.on, self.seconds, self.count = table, False, 0.0, 0
        self._started: list[float | None] = []

        @event.listens_for(engine, "before_execute")
        def _before(conn, clauseelement, multiparams, params, execution_options):
            hit = self.on and _touches(clauseelement, self.table)
            self._started.append(time.perf_counter() if hit else None)

        @event.listens_for(engine, "after_execute")
        def _after(conn, clauseelement, multiparams, params, execution_options, result):
            started = self._started.pop() if self._started else None
            if started is not None:
                self.seconds += time.perf_counter() - started
                self.count += 1


class _Clock:
    """Accumulates the time spent in wrapped functions, by name, each call's own time only:
    the time of a wrapped call made inside another wrapped call counts for the inner one's
    name and is taken off the outer one's."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._originals: list[tuple[object, str, object]] = []
        self._inner: list[float] = []  # per open wrapped call: time spent in wrapped calls inside

    def wrap(self, module, name: str, key) -> None:
        """Replaces `module.name` (a module function or a class's method) by a timed call;
        `key` is the name its time counts under, or a function of the call's arguments that
        returns it."""
        inner = getattr(module, name)
        self._originals.append((module, name, inner))

        def timed(*args, **kwargs):
            self._inner.append(0.0)
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spent = time.perf_counter() - t0
                nested = self._inner.pop()
                if self._inner:
                    self._inner[-1] += spent
                k = key(*args, **kwargs) if callable(key) else key
                self.seconds[k] = self.seconds.get(k, 0.0) + spent - nested

        setattr(module, name, timed)

    def restore(self) -> None:
        for module, name, inner in reversed(self._originals):
            setattr(module, name, inner)
        self._originals.clear()


def _save_key(*args, compressed: bool = False, **kwargs) -> str:
    """`artifacts.save` writes the model (plain) and the novelty detector (compressed)."""
    return "novelty_save" if compressed else "skops_save"


def train_child(url: str, queue_id: int) -> dict:
    """One run of `train_model_version`, as the retraining job calls it, phase by phase; then
    the bare-pipeline baseline."""
    sys.path.insert(0, str(ROOT))
    import gc

    from app import settle_heap
    from app.db import dispose_all, get_engine, session_scope
    from app.learning import artifacts, fitting, training
    from app.learning.features import choose_columns, table
    from app.learning.pipeline import build_pipeline
    from app.learning.snapshot import TRAIN, split_roles, take_snapshot
    from app.learning.training import train_model_version
    from app.models import Queue
    from app.queues.service import HUMAN_SOURCES, policy_of
    from workers.worker import preload

    preload()
    from threadpoolctl import threadpool_info

    blas = ", ".join(
        f"{p.get('internal_api')} {p.get('version')} x{p.get('num_threads')}"
        for p in threadpool_info()
    )
    clock = _Clock()
    clock.wrap(fitting, "choose_columns", "columns")
    clock.wrap(fitting, "table", "table")
    clock.wrap(fitting, "conformalize", "conformal")
    clock.wrap(fitting, "evaluate", "evaluate")  # the split model on the evaluation rows
    clock.wrap(fitting, "_auto_accept_rule", "auto_accept")  # only with a target precision
    # The promotion gate: the split model's held-out answers, then the paired bootstrap
    # against the active model, or the first-model rule when the queue has none.
    clock.wrap(fitting, "_answers", "promotion")
    clock.wrap(fitting, "compare_with_active", "promotion")
    clock.wrap(fitting, "_first_model", "promotion")
    clock.wrap(fitting, "_refit_on_everything", "refit")
    clock.wrap(fitting, "_input_guard", "guard_rest")  # its own time: the row sample
    clock.wrap(fitting, "build_profile", "profile")
    clock.wrap(fitting, "fit_novelty", "novelty")
    clock.wrap(fitting, "code_version", "code_version")
    clock.wrap(artifacts, "save", _save_key)
    engine = get_engine(url)
    marking = _StatementClock(engine, "training_example")  # store: examples marked as used
    store = training.store

    def store_marked(**kwargs):
        marking.on = True
        try:
            return store(**kwargs)
        finally:
            marking.on = False

    training.store = store_marked
    with engine.connect() as c:  # open the pool before the clock, as a running worker has
        c.exec_driver_sql("SELECT 1")
    settle_heap()
    rss_start = peak_rss_mib()

    t0 = time.perf_counter()
    outcome = train_model_version(db=engine, queue_id=queue_id, seed=MODEL_SEED)
    total_s = time.perf_counter() - t0
    if outcome.version is None:
        raise SystemExit(f"nothing trained: {outcome.why_skipped}")
    version = outcome.version
    version_id, version_name, active_now = version.id, version.version, version.active
    artifact_bytes = len(version.artifact)
    novelty_bytes = len(version.novelty) if version.novelty else 0
    metrics, card = version.metrics, version.card
    rss_peak = peak_rss_mib()
    rusage_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = outcome.seconds
    phases = dict(clock.seconds)
    phases["mark_used"] = marking.seconds
    phases["mark_used_statements"] = marking.count

    # Baseline: the bare pipeline, fitted once on the same training rows (read again).
    with session_scope(engine, write=False) as session:
        queue = session.get(Queue, queue_id)
        snap = take_snapshot(session=session, queue_id=queue_id)
    if snap.content_hash != version.snapshot:
        raise SystemExit("the baseline read other rows than the run")
    rows = snap.rows
    roles = split_roles(rows)
    train_idx = [i for i, role in enumerate(roles) if role == TRAIN]
    policy = policy_of(queue)
    payloads = [rows[i].payload for i in train_idx]
    columns = choose_columns(
        payloads, [f.model_dump() for f in policy.features] if policy.features else None
    )
    if columns != card["columns"]:
        raise SystemExit("the baseline chose other columns than the run")
    x_train = table(payloads, columns)
    y_train = [rows[i].target for i in train_idx]
    del outcome, version, snap
    gc.collect()
    bare = []
    for _ in range(BARE_REPEATS):  # the first is the baseline; the others show the spread
        b0 = time.perf_counter()
        build_pipeline(columns, MODEL_SEED).fit(x_train, y_train)
        bare.append(time.perf_counter() - b0)
    bare_s = bare[0]
    dispose_all()
    human = sum(1 for r in rows if r.source in HUMAN_SOURCES)
    return {
        "examples": len(rows),
        "human": human,
        "snapshot_s": seconds["snapshot"],
        "fit_s": seconds["fit"],
        "store_s": seconds["store"],
        "total_s": total_s,
        "bare_s": bare_s,
        "bare_all_s": bare,
        "blas": blas,
        "card_fit_s": card["fit_seconds"],
        "phases": phases,
        "rss_start_mib": rss_start,
        "rss_peak_mib": rss_peak,
        "rusage_peak_mib": rusage_peak,
        "version_id": version_id,
        "version": version_name,
        "active": active_now,
        "artifact_bytes": artifact_bytes,
        "novelty_bytes": novelty_bytes,
        "served": card.get("served"),
        "novelty_card": {
            k: v for k, v in (card.get("novelty") or {}).items() if k not in ("threshold",)
        },
        "promotion_reason": metrics.get("promotion_reason"),
        "split": card["data"]["split"],
        "calibration": card["calibration"],
        "columns": [f"{c['name']}:{c['kind']}" for c in card["columns"]],
        "code_version": card.get("code_version"),
        "libraries": card.get("libraries"),
        "macro_f1": metrics["macro_f1"],
        "accuracy": metrics["accuracy"],
        "coverage": metrics.get("coverage"),
        "coverage_target": metrics.get("coverage_target"),
        "mean_set_size": metrics.get("mean_set_size"),
        "single_answer_share": metrics.get("single_answer_share"),
        "n_eval": metrics["n_eval"],
    }


def run_train(url: str, queue_id: int, env: dict | None = None) -> dict:
    """Runs train_child in a fresh interpreter (with `env` added) and returns its report."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), CHILD_FLAG, url, str(queue_id)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the training child failed ({proc.returncode}):\n{proc.stdout[-2000:]}")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise SystemExit(f"the training child reported nothing:\n{proc.stdout[-2000:]}")


# ---------------------------------------------------------------------------------------------
# Re-scoring


def check_rescored(engine, queue_id: int, version: str, expected: int) -> dict:
    """Every item inserted as pending: exactly one prediction, from `version`, source model;
    and each now routed by it (still pending, or auto-accepted with its label)."""
    from sqlalchemy import text

    mine = "i.queue_id = :q AND i.external_id LIKE 'pending-%'"
    with engine.connect() as c:
        statuses = dict(
            c.execute(
                text(f"SELECT i.status, count(*) FROM item i WHERE {mine} GROUP BY i.status"),
                {"q": queue_id},
            ).all()
        )
        rows, items, ours = c.execute(
            text(
                "SELECT count(*), count(DISTINCT p.item_id),"
                " coalesce(sum(CASE WHEN p.model_version = :v AND p.source = 'model'"
                " THEN 1 ELSE 0 END), 0)"
                f" FROM prediction p JOIN item i ON i.id = p.item_id WHERE {mine}"
            ),
            {"q": queue_id, "v": version},
        ).one()
        auto_labels = c.execute(
            text(
                "SELECT count(*) FROM final_label l JOIN item i ON i.id = l.item_id"
                f" WHERE {mine} AND l.source = 'auto' AND l.model_version = :v"
            ),
            {"q": queue_id, "v": version},
        ).scalar_one()
    got = {
        "items": sum(statuses.values()),
        "statuses": statuses,
        "prediction_rows": rows,
        "items_predicted": items,
        "ours": ours,
        "auto_labels": auto_labels,
    }
    assert got["items"] == expected, got
    assert rows == items == ours == expected, got
    assert set(statuses) <= {"pending", "auto_accepted"}, got
    assert auto_labels == statuses.get("auto_accepted", 0), got
    return got


RAW_REPEATS = 3


def _raw_seconds(loaded, payloads: list[dict], batch: int | None) -> float:
    """Best of RAW_REPEATS: `candidates(predict_proba(...))` over the payloads in memory, in one
    call (batch None) or in slices of `batch`."""
    best = float("inf")
    step = batch or len(payloads)
    for _ in range(RAW_REPEATS):
        t0 = time.perf_counter()
        n = 0
        for start in range(0, len(payloads), step):
            chunk = payloads[start : start + step]
            n += len(loaded.candidates(loaded.predict_proba(chunk)))
        best = min(best, time.perf_counter() - t0)
        assert n == len(payloads)
    return best


def run_rescore(engine, queue_id: int, version_id: int, version: str, claims: list[dict]) -> dict:
    from app.db import session_scope
    from app.learning import rescoring, scoring
    from app.models import ModelVersion

    n = len(claims)
    insert_pending(engine, queue_id, claims)

    # Where the time goes: the functions rescore_batch calls, timed in place.
    clock = _Clock()
    clock.wrap(rescoring, "load_version", "load")
    clock.wrap(rescoring, "_waiting_batch", "read")
    clock.wrap(scoring.LoadedModel, "assess", "assess")  # the model and the input guard
    clock.wrap(scoring.LoadedModel, "candidates", "candidates")
    clock.wrap(rescoring, "_still_waiting", "still_waiting")
    clock.wrap(rescoring, "insert_rows", "insert")  # predictions, audit frames, auto labels
    clock.wrap(rescoring, "_reroute", "reroute")  # its own time: placement and item updates
    try:
        t0 = time.perf_counter()
        rescored = rescoring.rescore_queue(engine, queue_id=queue_id, version_id=version_id)
        rescore_s = time.perf_counter() - t0
    finally:
        clock.restore()
    assert rescored == n, f"rescore_queue re-scored {rescored} of {n} items"
    checked = check_rescored(engine, queue_id, version, n)

    # The limit: the loaded model on the same payloads, already in memory as dicts.
    with session_scope(engine, write=False) as s:
        loaded = scoring.load_version(s, s.get(ModelVersion, version_id))
    payloads = [c["payload"] for c in claims]
    raw_s = _raw_seconds(loaded, payloads, None)
    raw_batched_s = _raw_seconds(loaded, payloads, rescoring.BATCH)
    parts = clock.seconds
    return {
        "items": n,
        "batch": rescoring.BATCH,
        "rescore_s": rescore_s,
        "raw_s": raw_s,
        "raw_batched_s": raw_batched_s,
        "rescore_per_s": n / rescore_s,
        "raw_per_s": n / raw_s,
        "raw_batched_per_s": n / raw_batched_s,
        "ratio": raw_s / rescore_s,
        "parts": {
            "load": parts.get("load", 0.0),
            "read": parts.get("read", 0.0),
            "model": parts.get("assess", 0.0) + parts.get("candidates", 0.0),
            "write": parts.get("still_waiting", 0.0) + parts.get("insert", 0.0),
            "reroute": parts.get("reroute", 0.0),
        },
        "checked": checked,
    }


# ---------------------------------------------------------------------------------------------
# One backend


def run_backend(backend: str, args, data: dict[int, list[dict]], pending: list[dict]) -> dict:
    instance = Path(tempfile.mkdtemp(prefix=f"loupe-bench-retrain-{backend}-"))
    os.environ["LOUPE_INSTANCE"] = str(instance)
    if backend == "postgresql":
        url = app_pg_url()
        os.environ["DATABASE_URL"] = PG_URL
        reset_pg_schema()
    else:
        url = f"sqlite:///{instance / 'loupe.db'}"
        os.environ.pop("DATABASE_URL", None)

    from app.db import get_engine, session_scope, upgrade_database
    from app.demo.claims import LABELS
    from app.queues.service import create_queue

    try:
        upgrade_database(url)
        engine = get_engine(url)
        version = sqlite3.sqlite_version if backend == "sqlite" else pg_version()
        runs = []
        for size in args.sizes:
            variants = [("", None)]
            if not args.no_single_thread:
                variants.append(("-blas1", SINGLE_THREAD))
            for suffix, env in variants:
                with session_scope(engine) as s:
                    queue_id = create_queue(
                        session=s, data={"name": f"retrain-{size}{suffix}", "labels": LABELS}
                    ).id
                t0 = time.perf_counter()
                insert_labelled(engine, queue_id, data[size])
                setup_s = time.perf_counter() - t0
                engine.dispose()  # no pooled connection of ours stays open while the child runs
                how = "1 BLAS thread" if env else "default threads"
                print(f"{backend}: {size:,} labelled examples in {setup_s:.1f}s; training ({how})")
                r = run_train(url, queue_id, env)
                r.update(backend=backend, size=size, queue_id=queue_id, setup_s=setup_s)
                r["ratio"] = r["total_s"] / r["bare_s"]
                print(
                    f"  snapshot {r['snapshot_s']:.2f}s  fit {r['fit_s']:.2f}s  "
                    f"store {r['store_s']:.2f}s  total {r['total_s']:.2f}s  "
                    f"bare fit {r['bare_s']:.2f}s  ratio {r['ratio']:.1f}\n"
                    f"  peak RSS {r['rss_peak_mib']:.0f} MiB (after imports "
                    f"{r['rss_start_mib']:.0f}, ru_maxrss {r['rusage_peak_mib']:.0f})  "
                    f"BLAS {r['blas']}\n  phases "
                    + ", ".join(f"{k} {v:.2f}" for k, v in r["phases"].items()),
                    flush=True,
                )
                if env:
                    runs[-1]["blas1"] = r
                else:
                    runs.append(r)

        rescore = None
        if args.rescore:
            first = runs[0]
            if not first["active"]:
                raise SystemExit("the first model was not promoted; nothing to re-score with")
            print(f"{backend}: re-scoring {args.rescore:,} pending items with {first['version']}")
            rescore = run_rescore(
                engine, first["queue_id"], first["version_id"], first["version"], pending
            )
            rescore["model"] = first["version"]
            rescore["model_examples"] = first["size"]
            print(
                f"  rescore_queue {rescore['rescore_s']:.2f}s ({rescore['rescore_per_s']:,.0f}/s)"
                f"  raw {rescore['raw_s']:.2f}s ({rescore['raw_per_s']:,.0f}/s)"
                f"  ratio {rescore['ratio']:.2f}  checked {rescore['checked']}",
                flush=True,
            )
        return {"backend": backend, "version": version, "runs": runs, "rescore": rescore}
    finally:
        tear_down(None, instance, backend)


# ---------------------------------------------------------------------------------------------
# Report


def train_table(results: list[dict]) -> str:
    lines = [
        "| backend | examples | snapshot s | fit s | store s | run total s | bare fit s "
        "| ratio | peak RSS MiB | macro F1 | coverage (target) | mean set size |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        for r in res["runs"]:
            lines.append(
                f"| {r['backend']} | {r['examples']:,} | {r['snapshot_s']:.2f} "
                f"| {r['fit_s']:.2f} | {r['store_s']:.2f} | {r['total_s']:.2f} "
                f"| {r['bare_s']:.2f} | {r['ratio']:.1f} | {r['rss_peak_mib']:,.0f} "
                f"| {r['macro_f1']:.3f} | {r['coverage']:.3f} ({r['coverage_target']:.2f}) "
                f"| {r['mean_set_size']:.2f} |"
            )
    return "\n".join(lines)


def _fit_parts(r: dict) -> dict:
    """The parts of the *fit* step, in seconds; each wrapped function's own time (see _Clock)."""
    p = r["phases"]
    features = p.get("columns", 0.0) + p.get("table", 0.0)
    parts = {
        "features": features,
        # the card's fit_seconds: column choice, feature table and the split model's fit
        "calibrated": r["card_fit_s"] - features,
        "conformal": p.get("conformal", 0.0),
        "evaluate": p.get("evaluate", 0.0),
        "auto_accept": p.get("auto_accept", 0.0),
        "promotion": p.get("promotion", 0.0),
        "refit": p.get("refit", 0.0),
        "profile": p.get("profile", 0.0),
        # the IsolationForest on the transformed rows, its threshold, the row sample, its save
        "novelty": p.get("novelty", 0.0) + p.get("guard_rest", 0.0) + p.get("novelty_save", 0.0),
        "skops_save": p.get("skops_save", 0.0),
        "code_version": p.get("code_version", 0.0),
    }
    parts["rest"] = r["fit_s"] - sum(parts.values())
    parts["mark_used"] = p.get("mark_used", 0.0)
    return parts


def phase_table(results: list[dict]) -> str:
    lines = [
        "| backend | examples | columns + feature table s | split model: calibrated fit s "
        "| conformal sets s | evaluation s | promotion gate s | refit on every label s "
        "| input profile s | novelty detector s | model skops save s | rest of fit s "
        "| store: marking examples used s | model bytes | detector bytes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        for r in res["runs"]:
            f = _fit_parts(r)
            lines.append(
                f"| {r['backend']} | {r['examples']:,} | {f['features']:.2f} "
                f"| {f['calibrated']:.2f} | {f['conformal']:.2f} | {f['evaluate']:.2f} "
                f"| {f['promotion']:.2f} | {f['refit']:.2f} | {f['profile']:.2f} "
                f"| {f['novelty']:.2f} | {f['skops_save']:.2f} "
                f"| {f['rest'] + f['code_version'] + f['auto_accept']:.2f} "
                f"| {f['mark_used']:.2f} | {r['artifact_bytes']:,} | {r['novelty_bytes']:,} |"
            )
    return "\n".join(lines)


def blas_table(results: list[dict]) -> str:
    lines = [
        "| backend | examples | BLAS threads | run total s | calibrated fit s | bare fit s "
        "| ratio | 3 bare fits, min–max s |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        for run in res["runs"]:
            for r, how in ((run, "default"), (run.get("blas1"), "1")):
                if r is None:
                    continue
                lines.append(
                    f"| {r['backend']} | {r['examples']:,} | {how} "
                    f"| {r['total_s']:.2f} | {_fit_parts(r)['calibrated']:.2f} "
                    f"| {r['bare_s']:.2f} | {r['ratio']:.1f} "
                    f"| {min(r['bare_all_s']):.2f}–{max(r['bare_all_s']):.2f} |"
                )
    return "\n".join(lines)


def rescore_table(results: list[dict]) -> str:
    lines = [
        "| backend | model (examples) | pending items | `rescore_queue` s | re-scoring items/s "
        "| raw model items/s, one call | ratio | raw model items/s, batches of 1,000 "
        "| model load s | read s | model + guard s | write s | re-routing s | rest s "
        "| auto-accepted by re-routing |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        r = res["rescore"]
        if r is None:
            continue
        p = r["parts"]
        rest = r["rescore_s"] - sum(p.values())
        lines.append(
            f"| {res['backend']} | {r['model']} ({r['model_examples']:,}) | {r['items']:,} "
            f"| {r['rescore_s']:.2f} | {r['rescore_per_s']:,.0f} | {r['raw_per_s']:,.0f} "
            f"| {r['ratio']:.2f} | {r['raw_batched_per_s']:,.0f} | {p['load']:.2f} "
            f"| {p['read']:.2f} | {p['model']:.2f} | {p['write']:.2f} | {p['reroute']:.2f} "
            f"| {rest:.2f} | {r['checked']['statuses'].get('auto_accepted', 0):,} |"
        )
    return "\n".join(lines)


def section(results: list[dict], info: dict, args, interpretation: str) -> str:
    versions = {r["backend"]: r["version"] for r in results}
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    first = results[0]["runs"][0]
    libs = first.get("libraries") or {}
    code = (first.get("code_version") or "unknown")[:7]
    split = first["split"]
    command = " ".join([".venv/bin/python bench/retrain.py", args.command]).strip()
    out = [
        START,
        "## Retraining and re-scoring",
        "",
        "`bench/retrain.py`. Data, untimed: per run, a queue made with `create_queue` (default "
        "policy: 95% coverage, macro F1, no training on auto-accepted labels) holding generated "
        "claims (`app.demo.claims.generate_claims`: 3 labels; amount, currency, country, "
        "merchant category, channel, three counts, a purchase date and a free-text note), "
        "each an `item` row (done), a `final_label` row (source `human`) and a "
        "`training_example` row (features = the payload, target = the label, `decided_at` one "
        "second apart), bulk-inserted; on PostgreSQL followed by `VACUUM ANALYZE` "
        "(autovacuum is off on this server).",
        "",
        "**Retraining** is timed in a fresh child process (modules imported and heap settled "
        "first, as `loupe worker` does), one call of "
        "`app.learning.training.train_model_version` on the engine, as the retraining job "
        "makes it, which times its three steps: *snapshot* = the read sessions (the policy, "
        "`take_snapshot`, the settings hash, `snapshot_is_new`, `active_for_comparison`; the "
        "queue has no model yet, so there is no active model to load or compare with); *fit* "
        "= `app.learning.fitting.fit`, in memory: the time-ordered split (oldest 60% train, "
        "next 20% conformal, newest 20% evaluation, "
        f"e.g. {split['train']:,}/{split['conformal']:,}/{split['evaluation']:,} rows at "
        f"{first['examples']:,}); the column choice and feature table; the *split model*, the "
        "ColumnTransformer + logistic-regression pipeline inside "
        '`CalibratedClassifierCV(method="temperature", cv=StratifiedKFold(5), '
        "ensemble=False)` fitted on the training part (five fold fits and one on all of it); "
        "the MAPIE conformal sets on the conformal part (a threshold per answer, Mondrian, "
        "when every answer has enough labels there); evaluation on the evaluation part; the "
        "auto-accept rule (MAPIE Learn-Then-Test), only when the queue has a target precision, "
        "which the default policy has not, so it is not run here; the *promotion gate* (the "
        "split model's held-out answers, then a paired bootstrap against the active model, "
        "or, as here for a queue's first model, the rule of at least 5 human labels per "
        "answer); the *refit* of the served model: the same calibrated pipeline (again five "
        "fold fits and one on all rows) on every label, the held-out ones included; the "
        "*input profile* of the training rows (ranges, categories, known words) and the "
        "*novelty detector* (an IsolationForest of 100 trees on the served pipeline's features "
        "of at most 20,000 training rows, its threshold set on the held-out rows, saved as "
        "compressed skops); the model card and the served model's skops save. *store* = the "
        "write session (snapshot and version rows with both files, every example marked as "
        "used in chunks of 10,000 ids, promotion). Not included: the Redis lock and the "
        "`training_run` rows of the retraining job. The parts of *fit* and *store* come from "
        "timing the functions `fit` and `store` call (wrapped in the child only; each part "
        "is its function's own time, calls to other wrapped functions taken off) and "
        "SQLAlchemy `before_execute`/`after_execute` events for the statements on "
        "`training_example` during the store; the split model's calibrated fit is the card's "
        "`fit_seconds` minus the column choice and feature table. Peak RSS is the child's "
        "`VmHWM` (/proc/self/status) right after the store; `getrusage(RUSAGE_SELF).ru_maxrss` "
        "is not used because Linux carries it over from the parent through fork and exec. "
        f"About {first['rss_start_mib']:,.0f} MiB of it is the interpreter with Flask, "
        "SQLAlchemy and scikit-learn imported, before the run. **Baseline**: in the same child "
        "after the run, `build_pipeline(columns, seed).fit(x_train, y_train)` once on the "
        "same training rows (feature table built before its clock), with no calibration, "
        "conformal step, evaluation, refit or input guard. Ratio = run total ÷ bare fit. "
        "Model metrics are the split model's, on the newest 20% of the labels (held out).",
        "",
        (
            f"**Re-scoring**: the model trained on {args.sizes[0]:,} examples is the queue's "
            f"active model; {args.rescore:,} more generated claims are inserted as `pending` items "
            "with no prediction rows, then `app.learning.rescoring.rescore_queue(engine, "
            "queue_id=..., version_id=...)` is timed in the parent process (batches of 1,000 by "
            "item id: read, score with the input guard with no transaction open, then in a "
            "short write transaction insert the predictions and route each item again by its "
            "new answers, as on arrival; the first batch loads the model and its novelty "
            "detector from their skops bytes). Its parts come from wrapping what "
            "`rescore_batch` calls, each its own time: model load (`load_version`), read "
            "(`_waiting_batch`: payloads and latest predictions), model + guard "
            "(`LoadedModel.assess`: `predict_proba`, the profile checks and the novelty "
            "detector on the rows that could be auto-accepted; and `candidates`), write "
            "(`_still_waiting` and every `insert_rows`: predictions, audit frames, `auto` "
            "labels), re-routing (`_reroute` less its inserts: placement, route reasons, "
            "uncertainty ranks, the item updates); rest = sessions, commits and row building. "
            "Afterwards the script asserts that every inserted item has exactly one prediction "
            "row, from the new version, source `model`, and is either still pending or "
            "auto-accepted with an `auto` label from that version. **Baseline**: the same "
            "payloads, already in memory as dicts, through the loaded model's "
            "`candidates(predict_proba(payloads))` (no input guard) in one call, best of 3; "
            "also shown in slices of 1,000. Ratio = re-scoring items/s ÷ raw items/s (one call)."
            if args.rescore
            else "**Re-scoring**: not measured in this run (`--rescore 0`)."
        ),
        "",
        f"- Date: {when}; commit {info['commit']}",
        f"- Machine: {info['platform']}; {info['cpu']}; {info['cores']} cores; "
        f"{info['memory']} RAM; load average {info['load']} before the run, "
        f"{info['load_after']} after it",
        f"- Python {info['python']}; SQLite {info['sqlite']}"
        + (f"; PostgreSQL {versions['postgresql']}" if "postgresql" in versions else "")
        + "".join(
            f"; {k} {libs[k]}"
            for k in ("scikit-learn", "numpy", "scipy", "mapie", "skops")
            if libs.get(k)
        )
        + f"; BLAS as loaded in the child: {first['blas']}",
        f"- Code: {code} (the `code_version` the model card recorded)",
        f"- Command: `{command}`; the whole run took {info['wall_s'] / 60:.1f} min",
        "",
        "### Retraining",
        "",
        train_table(results),
        "",
        "Where the time goes:",
        "",
        phase_table(results),
        "",
    ]
    if any("blas1" in run for res in results for run in res["runs"]):
        out += [
            "The same retraining on a second queue with the same rows, its child started with "
            "`OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1` (the app sets no thread limit, so the "
            "default rows are what `loupe worker` gets on this machine):",
            "",
            blas_table(results),
            "",
        ]
    if any(r["rescore"] for r in results):
        out += ["### Re-scoring", "", rescore_table(results), ""]
        checks = [
            f"{r['backend']} {r['rescore']['checked']['items']:,} items, "
            f"{r['rescore']['checked']['prediction_rows']:,} prediction rows, all from "
            f"{r['rescore']['model']}; "
            f"{r['rescore']['checked']['statuses'].get('pending', 0):,} still pending, "
            f"{r['rescore']['checked']['statuses'].get('auto_accepted', 0):,} auto-accepted "
            f"with as many `auto` labels"
            for r in results
            if r["rescore"]
        ]
        out += ["Checked after each re-scoring: " + "; ".join(checks) + ".", ""]
    out += [interpretation, END]
    return "\n".join(out)


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%"


def interpret(results: list[dict]) -> str:
    """Where the time goes, in a few sentences, from the figures of this run."""
    runs = [r for res in results for r in res["runs"]]
    size = max(r["examples"] for r in runs)
    big = [r for r in runs if r["examples"] == size]

    def name(r):
        return "SQLite" if r["backend"] == "sqlite" else "PostgreSQL"

    def each(fn) -> str:
        return " / ".join(fn(r) for r in big)

    def share(key: str) -> str:
        return each(lambda r: _pct(_fit_parts(r)[key], r["total_s"]))

    on = " / ".join(name(r) for r in big)
    most = all(_fit_parts(r)["calibrated"] + _fit_parts(r)["refit"] > r["total_s"] / 2 for r in big)
    first = (
        f"Where the time goes: at {size:,} examples ({on}) the two calibrated pipelines "
        "(each six fits of the whole pipeline: five cross-validation folds, then all its "
        f"rows) are {'most' if most else 'a large part'} of the run: the split model "
        f"{share('calibrated')} and the refit "
        f"of the served model on every label {share('refit')}; then the novelty detector "
        f"({share('novelty')}: the served pipeline's features of the sampled rows, the forest, "
        "its scores on the held-out rows and its compressed save), the snapshot ("
        + each(lambda r: f"{r['snapshot_s']:.1f} s")
        + ": every example's JSON decoded, then encoded again for the content hash), the "
        "column choice and feature table ("
        + each(lambda r: f"{_fit_parts(r)['features']:.1f} s")
        + ") and marking the examples as used ("
        + each(lambda r: f"{_fit_parts(r)['mark_used']:.1f} s")
        + ": per chunk of 10,000 ids, an `UPDATE` and a `count(*)`, the ids bound as one "
        "array (`id = ANY(:ids)`) on PostgreSQL and as an `IN` list on SQLite)"
    )
    pairs = [(r, r["blas1"]) for r in runs if "blas1" in r]
    if pairs:
        first += (
            "; run totals with the default BLAS threads → with one ("
            + ", ".join(
                f"{name(r)} {r['examples']:,}: {r['total_s']:.1f} → {one['total_s']:.1f} s"
                for r, one in pairs
            )
            + ")"
        )
    text = [first + "."]
    rs = [(res["backend"], res["rescore"]) for res in results if res["rescore"]]
    if rs:

        def part(key: str) -> str:
            return " / ".join(_pct(r["parts"][key], r["rescore_s"]) for _, r in rs)

        model_half = all(r["parts"]["model"] < r["rescore_s"] / 2 for _, r in rs)
        text.append(
            "Re-scoring reaches "
            + " and ".join(
                f"{_pct(r['ratio'], 1)} of the raw model's items/s on "
                f"{'SQLite' if b == 'sqlite' else 'PostgreSQL'}"
                for b, r in rs
            )
            + (
                ": the model with its input guard is under half of its time ("
                if model_half
                else ": the model with its input guard is most of its time ("
            )
            + part("model")
            + "), the rest is each batch's read of payloads and latest predictions ("
            + part("read")
            + "), claim check and inserts ("
            + part("write")
            + "), re-routing the items ("
            + part("reroute")
            + ") and loading the model and its detector ("
            + part("load")
            + ")."
        )
    return " ".join(text)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == CHILD_FLAG:
        result = train_child(sys.argv[2], int(sys.argv[3]))
        print("RESULT " + json.dumps(result), flush=True)
        return

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument(
        "--sizes",
        default="10000,100000",
        help="labelled examples per retraining run, comma-separated",
    )
    ap.add_argument(
        "--rescore", type=int, default=50_000, help="pending items to re-score (0: skip)"
    )
    ap.add_argument(
        "--no-single-thread",
        action="store_true",
        help="skip the second retraining run per size with OPENBLAS_NUM_THREADS=1",
    )
    ap.add_argument("--no-docs", action="store_true", help="print only; leave docs/ alone")
    args = ap.parse_args()
    args.command = " ".join(sys.argv[1:])
    args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    if not args.sizes:
        ap.error("--sizes needs at least one size")
    sys.path.insert(0, str(ROOT))

    info = machine_info()  # before the run, so the load average is the machine's, not ours
    wall0 = time.perf_counter()
    from app.demo.claims import generate_claims

    t0 = time.perf_counter()
    data = {n: generate_claims(n, seed=TRAIN_SEED) for n in sorted(set(args.sizes))}
    pending = generate_claims(args.rescore, seed=PENDING_SEED) if args.rescore else []
    print(f"generated the claims in {time.perf_counter() - t0:.1f}s", flush=True)

    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = [run_backend(b, args, data, pending) for b in backends]
    info["load_after"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    info["wall_s"] = time.perf_counter() - wall0

    text = interpret(results)
    print("\n" + train_table(results) + "\n\n" + phase_table(results))
    if args.rescore:
        print("\n" + rescore_table(results))
    print("\n" + text)
    if not args.no_docs:
        write_docs(section(results, info, args, text), START, END)
        print("\nwrote docs/BENCHMARKS.md")


if __name__ == "__main__":
    main()
