"""Ingest benchmark: items/s through the real HTTP API against a raw bulk insert.

Run by hand (not part of the test suite):

    .venv/bin/python bench/ingest.py [--items 200000] [--batch 5000]
                                     [--backend sqlite|postgresql|both] [--profile] [--no-docs]

For each backend it migrates a fresh database, creates a queue, an admin and a token, serves
`create_app()` with werkzeug in a thread and POSTs pre-serialised NDJSON batches over one
keep-alive connection. The baseline, in the same run, writes the same rows for a second queue
(each item's `item` row, its `prediction` row, when auto-accepted its `final_label` row, and
its `audit_frame` row when auto-accept was planned for it)
with the plainest fast path the database has: sqlite3 `executemany` in one BEGIN IMMEDIATE
transaction; psycopg 3 `COPY ... FROM STDIN` per table in one transaction; explicit item ids,
all tuples built before the clock starts. Ratio = API items/s ÷ baseline items/s. The earlier
item-rows-only insert is timed too, for a third queue, and shown as an extra column. The table
is printed and written between the `<!-- ingest:start -->` / `<!-- ingest:end -->` markers of
docs/BENCHMARKS.md.

`--profile` runs cProfile around every request on the server side and prints the top
functions (use it with a smaller `--items`; the figures are then not written to the docs).

PostgreSQL: `postgresql://postgres@127.0.0.1:5432/loupe_bench` (trust auth, override with
BENCH_PG_URL), created when missing; its `public` schema is dropped before and after the run,
so never point it at a database a test run is using. Redis: REDIS_URL or
`redis://127.0.0.1:6379/15` (the app connects to it but the ingest path does not use it).
"""

# ruff: noqa: T201  (a command-line report: printing is its job)
from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import json
import os
import platform
import pstats
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "BENCHMARKS.md"
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/loupe_bench")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
LABELS = ["legit", "fraud", "duplicate"]
START, END = "<!-- ingest:start -->", "<!-- ingest:end -->"
_by_score = itemgetter("score")
ITEM_COLUMNS = (
    "queue_id",
    "external_id",
    "payload",
    "status",
    "priority",
    "route_decision",
    "route_reason",
    "created_at",
    "uncertainty_rank",
)
PREDICTION_COLUMNS = ("item_id", "model_version", "source", "candidates", "created_at")
LABEL_COLUMNS = (
    "item_id",
    "queue_id",
    "value",
    "source",
    "reviewers",
    "decided_at",
    "model_version",
    "model_label",
    "model_score",
)
FRAME_COLUMNS = (
    "queue_id",
    "item_id",
    "model_version",
    "answer",
    "score",
    "band",
    "sample_rate",
    "to_person",
    "created_at",
)

DOC_INTRO = """# Benchmarks

Throughput figures for Loupe's hot paths, measured by the scripts in `bench/` on one machine,
each next to a baseline taken in the same run on the same machine (so the ratio matters more
than the absolute numbers). They are run by hand, not in CI; see `bench/README.md`.

Run everything from the repository root with the project's virtualenv, e.g.

    .venv/bin/python bench/ingest.py                      # 200,000 items, SQLite and PostgreSQL
    .venv/bin/python bench/ingest.py --backend sqlite --items 50000 --batch 2000
    .venv/bin/python bench/ingest.py --items 20000 --profile   # where the API time goes

Each script rewrites only its own section (between its `<!-- name:start -->` and
`<!-- name:end -->` markers); add new benchmarks as new sections.
"""


# ---------------------------------------------------------------------------------------------
# Data

_COUNTRIES = ["DE", "FR", "NL", "GB", "US", "ES", "IT", "PL", "SE", "BR", "IN", "NG"]
_CHANNELS = ["web", "app", "pos", "phone", "api"]
_MCC = ["5411", "5812", "5999", "4829", "7995", "5732", "4111", "6011"]
_DEVICES = ["ios", "android", "desktop", "terminal", "unknown"]
_WORDS = (
    "refund customer called about card charge twice order delivered late account "
    "password reset new device login gift shipping address changed urgent wire "
    "transfer invoice subscription cancelled chargeback merchant review"
).split()


def _scores(rng: random.Random) -> list[dict]:
    """Three candidates summing to 1: ~55% confident (auto-accept or audit), the rest review."""
    r = rng.random()
    if r < 0.55:
        top = rng.uniform(0.91, 0.995)
    elif r < 0.70:
        top = rng.uniform(0.80, 0.90)  # below the threshold
    else:
        top = rng.uniform(0.40, 0.79)
    second = rng.uniform(0.0, 1.0 - top)
    top, second = round(top, 4), round(second, 4)
    third = round(1.0 - top - second, 4)
    labels = LABELS[:]
    rng.shuffle(labels)
    return [{"label": lab, "score": s} for lab, s in zip(labels, (top, second, third), strict=True)]


def make_items(n: int, seed: int = 42) -> list[dict]:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        items.append(
            {
                "external_id": f"txn-{i:09d}",
                "payload": {
                    "amount": round(rng.lognormvariate(3.5, 1.2), 2),
                    "currency": "EUR",
                    "country": rng.choice(_COUNTRIES),
                    "channel": rng.choice(_CHANNELS),
                    "merchant_category": rng.choice(_MCC),
                    "customer_age_days": rng.randint(0, 4000),
                    "device": rng.choice(_DEVICES),
                    "note": " ".join(rng.choices(_WORDS, k=rng.randint(4, 14))),
                },
                "prediction": {"model_version": "fraud-2024.06", "candidates": _scores(rng)},
                "priority": rng.choice((0, 0, 0, 0, 1, 5)),
            }
        )
    return items


def ndjson_batches(items: list[dict], batch: int) -> list[bytes]:
    return [
        "\n".join(json.dumps(it, separators=(",", ":")) for it in items[i : i + batch]).encode()
        for i in range(0, len(items), batch)
    ]


def raw_rows(
    items: list[dict],
    queue_id: int,
    route_as,
    now: datetime,
    sqlite_style: bool,
    first_id: int | None = None,
) -> list[tuple[str, tuple[str, ...], list[tuple]]]:
    """The rows the ingest writes for `items`, as (table, columns, tuples) in insert order,
    computed (JSON included) before the clock starts.

    Stored under `queue_id` but routed as the queue `route_as` (the API's, so that the audit
    draw, which hashes the queue name, picks the same items). With `first_id`, the same rows as
    the API path: `item` rows with explicit ids from `first_id` on, one `prediction` row per
    item, one `final_label` row per auto-accepted item and one `audit_frame` row per item
    auto-accept was planned for (auto-accepted or audited), all referencing those ids. Without
    it, the `item` rows only, their ids left to the database.
    """
    from app.db import dumps_json  # the app's JSON serializer: the same stored text
    from app.ingest.service import STATUS_FOR_ROUTE
    from app.queues.order import rank_of
    from app.queues.service import policy_of
    from app.routing.placement import place, record_rows

    policy, queue_name = policy_of(route_as), route_as.name

    # SQLite stores timestamps as text, in the format SQLAlchemy writes (naive UTC).
    when = now.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite_style else now
    item_rows, prediction_rows, label_rows, frame_rows = [], [], [], []
    for n, it in enumerate(items):
        prediction = it["prediction"]
        cands = sorted(prediction["candidates"], key=_by_score, reverse=True)
        placed = place(
            policy=policy,
            paused=None,
            queue_name=queue_name,
            external_id=it["external_id"],
            candidates=cands,
            detail=None,
        )
        r = placed.route
        row = (
            queue_id,
            it["external_id"],
            dumps_json(it["payload"]),
            STATUS_FOR_ROUTE[r.decision],
            it["priority"],
            r.decision,
            r.reason,
            when,
            rank_of(cands, None, it["external_id"]),
        )
        if first_id is None:
            item_rows.append(row)
            continue
        item_id = first_id + n
        item_rows.append((item_id, *row))
        version = prediction["model_version"]
        prediction_rows.append((item_id, version, "producer", dumps_json(cands), when))
        frame, label = record_rows(
            placed,
            queue_id=queue_id,
            item_id=item_id,
            candidates=cands,
            model_version=version,
            policy=policy,
            paused=False,
            now=now,
        )
        if label is not None:
            label_rows.append(
                (
                    item_id,
                    queue_id,
                    label["value"],
                    "auto",
                    "[]",
                    when,
                    version,
                    label["model_label"],
                    label["model_score"],
                )
            )
        if frame is not None:
            frame_rows.append(tuple(when if c == "created_at" else frame[c] for c in FRAME_COLUMNS))
    if first_id is None:
        return [("item", ITEM_COLUMNS, item_rows)]
    return [
        ("item", ("id", *ITEM_COLUMNS), item_rows),
        ("prediction", PREDICTION_COLUMNS, prediction_rows),
        ("final_label", LABEL_COLUMNS, label_rows),
        ("audit_frame", FRAME_COLUMNS, frame_rows),
    ]


# ---------------------------------------------------------------------------------------------
# Machine


def measured_commit() -> str:
    """The commit the run measures, flagged when tracked files differ from it."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    if not head:
        return "unknown"
    return f"{head} with uncommitted changes" if dirty else head


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "commit": measured_commit(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "load": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


# ---------------------------------------------------------------------------------------------
# Server


class _Profiled:
    """WSGI middleware: one cProfile across every request (requests are sequential)."""

    def __init__(self, app):
        self.app = app
        self.profile = cProfile.Profile()

    def __call__(self, environ, start_response):
        self.profile.enable()
        try:
            # Materialise the body inside the profile so the view's work is counted.
            return [b"".join(self.app(environ, start_response))]
        finally:
            self.profile.disable()


def serve(app):
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args, **kwargs):
            pass

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def push(port: int, queue: str, token: str, batches: list[bytes]) -> tuple[int, dict, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Content-Type": "application/x-ndjson", "Authorization": f"Bearer {token}"}
    created, routed = 0, {}
    t0 = time.perf_counter()
    for body in batches:
        conn.request("POST", f"/api/v1/queues/{queue}/items", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise SystemExit(f"ingest answered {resp.status}: {data[:500]!r}")
        answer = json.loads(data)
        created += answer["created"]
        for key, n in answer["routed"].items():
            routed[key] = routed.get(key, 0) + n
    elapsed = time.perf_counter() - t0
    conn.close()
    return created, routed, elapsed


# ---------------------------------------------------------------------------------------------
# Backends


def reset_pg_schema() -> None:
    import psycopg

    base, _, name = PG_URL.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def pg_version() -> str:
    import psycopg

    with psycopg.connect(PG_URL) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def next_item_id(backend: str, db_file: Path, n: int) -> int:
    """The first of `n` item ids the raw insert may assign itself, taken before the clock.

    SQLite: max(id) + 1 (only this script writes now). PostgreSQL: the range is reserved by
    moving the sequence past it (`setval(item_id_seq, nextval + n - 1)`), so ids handed out
    later by the sequence cannot collide with the explicit ones.
    """
    if backend == "sqlite":
        conn = sqlite3.connect(db_file)
        try:
            return conn.execute("SELECT coalesce(max(id), 0) + 1 FROM item").fetchone()[0]
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        last = conn.execute(
            "SELECT setval('item_id_seq', nextval('item_id_seq') + %s - 1)", (n,)
        ).fetchone()[0]
    return last - n + 1


def raw_sqlite(db_file: Path, tables: list[tuple[str, tuple[str, ...], list[tuple]]]) -> float:
    """`executemany` per table, all in one BEGIN IMMEDIATE transaction; the seconds it took."""
    conn = sqlite3.connect(db_file, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    statements = [
        (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows)
        for table, cols, rows in tables
    ]
    t0 = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    for sql, rows in statements:
        conn.executemany(sql, rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def raw_postgres(tables: list[tuple[str, tuple[str, ...], list[tuple]]]) -> float:
    """`COPY ... FROM STDIN` per table, all in one transaction; the seconds it took."""
    import psycopg

    statements = [
        (f"COPY {table} ({', '.join(cols)}) FROM STDIN", rows) for table, cols, rows in tables
    ]
    with psycopg.connect(PG_URL) as conn:
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            for sql, rows in statements:
                with cur.copy(sql) as cp:
                    for row in rows:
                        cp.write_row(row)
        conn.commit()
        return time.perf_counter() - t0


def raw_insert(backend: str, db_file: Path, tables) -> float:
    return raw_sqlite(db_file, tables) if backend == "sqlite" else raw_postgres(tables)


def count_rows(session, queue_id: int) -> tuple[int, int, int, int]:
    """(items, predictions, final labels, audit frame rows) stored for the queue."""
    from sqlalchemy import text

    def count(sql: str) -> int:
        return session.execute(text(sql), {"q": queue_id}).scalar_one()

    return (
        count("SELECT count(*) FROM item WHERE queue_id = :q"),
        count(
            "SELECT count(*) FROM prediction p JOIN item i ON i.id = p.item_id"
            " WHERE i.queue_id = :q"
        ),
        count("SELECT count(*) FROM final_label WHERE queue_id = :q"),
        count("SELECT count(*) FROM audit_frame WHERE queue_id = :q"),
    )


def tear_down(server, instance: Path, backend: str) -> None:
    """Stops the server, closes the pools, removes the instance and empties the bench DB."""
    from app.db import dispose_all

    if server is not None:
        server.shutdown()
        server.server_close()
    dispose_all()
    shutil.rmtree(instance, ignore_errors=True)
    if backend == "postgresql":
        reset_pg_schema()


def run_backend(backend: str, items: list[dict], batch: int, profile: bool) -> dict:
    instance = Path(tempfile.mkdtemp(prefix=f"loupe-bench-{backend}-"))
    os.environ["LOUPE_INSTANCE"] = str(instance)
    os.environ["REDIS_URL"] = REDIS_URL
    os.environ.setdefault("SECRET_KEY", "bench-" + os.urandom(16).hex())
    if backend == "postgresql":
        os.environ["DATABASE_URL"] = PG_URL
        reset_pg_schema()
    else:
        os.environ.pop("DATABASE_URL", None)

    # Imported only now: Settings reads the environment set above.
    from app import create_app, settle_heap
    from app.auth.service import create_token, create_user
    from app.db import get_engine, session_scope, upgrade_database
    from app.queues.service import create_queue
    from app.settings import Settings

    settings = Settings()
    url = settings.resolved_database_url()
    server = None
    try:
        upgrade_database(url)
        with session_scope(get_engine(url)) as s:
            api_queue = create_queue(session=s, data={"name": "bench", "labels": LABELS})
            raw_queue = create_queue(session=s, data={"name": "bench-raw", "labels": LABELS})
            items_queue = create_queue(
                session=s, data={"name": "bench-raw-items", "labels": LABELS}
            )
            admin = create_user(session=s, name="bench-admin", role="admin", password=None)
            token = create_token(session=s, user=admin)
        version = sqlite3.sqlite_version if backend == "sqlite" else pg_version()

        app = create_app(settings)
        batches = ndjson_batches(items, batch)
        # As `loupe serve` and gunicorn do once started; it also hides the generated items,
        # which a real server would not hold, from the collector.
        settle_heap()
        wsgi = _Profiled(app) if profile else app
        server, _thread = serve(wsgi)
        created, routed, api_s = push(server.server_port, api_queue.name, token, batches)
        if created != len(items):
            raise SystemExit(f"{backend}: created {created} of {len(items)} items")

        # The baseline: the same rows (items, predictions, auto labels, audit frame) for a second
        # queue.
        db_file = instance / "loupe.db"
        sqlite_style = backend == "sqlite"
        first_id = next_item_id(backend, db_file, len(items))
        now = datetime.now(UTC)
        tables = raw_rows(items, raw_queue.id, api_queue, now, sqlite_style, first_id)
        raw_s = raw_insert(backend, db_file, tables)
        # The old figure, for comparison: the `item` rows alone, for a third queue, last.
        tables = raw_rows(items, items_queue.id, api_queue, datetime.now(UTC), sqlite_style)
        items_only_s = raw_insert(backend, db_file, tables)
        del tables

        # Both paths must have stored what they were meant to (checked after the clocks).
        with session_scope(get_engine(url), write=False) as s:
            api_rows = count_rows(s, api_queue.id)
            raw_rows_stored = count_rows(s, raw_queue.id)
            items_only_stored = count_rows(s, items_queue.id)
        n = len(items)
        if not (
            api_rows == raw_rows_stored
            and api_rows[:3] == (n, n, routed.get("auto_accepted", 0))
            and api_rows[3] == routed.get("auto_accepted", 0) + routed.get("audit", 0)
            and items_only_stored == (n, 0, 0, 0)
        ):
            raise SystemExit(
                f"{backend}: (items, predictions, labels, frame rows) stored: API {api_rows}, "
                f"baseline {raw_rows_stored}, items only {items_only_stored}"
            )

        result = {
            "backend": backend,
            "version": version,
            "items": len(items),
            "batch": batch,
            "api_s": api_s,
            "raw_s": raw_s,
            "items_only_s": items_only_s,
            "api_per_s": len(items) / api_s,
            "raw_per_s": len(items) / raw_s,
            "items_only_per_s": len(items) / items_only_s,
            "api_rows": api_rows,
            "raw_rows": raw_rows_stored,
            "routed": routed,
        }
        result["ratio"] = result["api_per_s"] / result["raw_per_s"]
        if profile:
            result["profile"] = wsgi.profile
        return result
    finally:
        tear_down(server, instance, backend)


# ---------------------------------------------------------------------------------------------
# Report


def table(results: list[dict]) -> str:
    lines = [
        "| backend | items | batch | API items/s | raw same-rows items/s | ratio "
        "| raw item rows/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r['items']:,} | {r['batch']:,} | {r['api_per_s']:,.0f} "
            f"| {r['raw_per_s']:,.0f} | {r['ratio']:.2f} | {r['items_only_per_s']:,.0f} |"
        )
    return "\n".join(lines)


def _mix(routed: dict) -> str:
    total = sum(routed.values()) or 1
    return ", ".join(
        f"{k.replace('_', '-')} {100 * n / total:.0f}%" for k, n in sorted(routed.items())
    )


def _stored(r: dict) -> str:
    items, predictions, labels, frames = r["api_rows"]
    return (
        f"{r['backend']} {items:,} items, {predictions:,} predictions, {labels:,} labels, "
        f"{frames:,} audit frame rows"
    )


def section(results: list[dict], info: dict) -> str:
    versions = {r["backend"]: r["version"] for r in results}
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    raw_how = []
    if "sqlite" in versions:
        raw_how.append(
            "SQLite: `sqlite3` `executemany` of one `INSERT` per table, all four in one "
            "`BEGIN IMMEDIATE` transaction, WAL, synchronous=NORMAL, foreign_keys=ON; explicit "
            "item ids from `SELECT max(id) + 1` on"
        )
    if "postgresql" in versions:
        raw_how.append(
            "PostgreSQL: psycopg 3 `COPY item (id, ...) FROM STDIN`, then `COPY prediction`, "
            "`COPY final_label` and `COPY audit_frame`, in one transaction; explicit item ids "
            "from a range reserved with `setval('item_id_seq', nextval('item_id_seq') + n - 1)`"
        )
    return "\n".join(
        [
            START,
            "## Ingest",
            "",
            "`bench/ingest.py`: items pushed to `POST /api/v1/queues/<name>/items` as NDJSON "
            "(one keep-alive connection, batches sent one after another, bodies serialised before "
            "the clock starts; the werkzeug server runs in the same process), against a baseline "
            "that writes the same rows straight into the database, for a second queue, after the "
            "API run: every `item` row; its `prediction` row (model version, source `producer`, "
            "candidates sorted by score, highest first, created_at); and, for each auto-accepted "
            "item, its `final_label` row (source `auto`, value and model label the top candidate, "
            "model score its score, model version, reviewers `[]`, decided_at); and, for each "
            "item auto-accept was planned for (auto-accepted or sent to audit), its `audit_frame` "
            "row (answer, score, band, sample rate, whether a person answers it). Item rows carry "
            "their `uncertainty_rank`. Rows are built with the app's own `place`, `record_rows` "
            "and `rank_of`, before the clock. The items are "
            "routed as the API's queue routed them (the audit draw hashes the queue name), so both "
            "paths store the same number of rows of each kind, with the same JSON text (the app's "
            "own serializer) and, on SQLite, timestamps in SQLAlchemy's text format (naive UTC). "
            "Routing, JSON and every tuple are computed, and the item ids chosen, before the "
            "baseline's clock starts; the clock covers the inserts and the commit, in one "
            "transaction for all the items, where the API commits once per batch "
            f"({'; '.join(raw_how)}).",
            "",
            "Ratio = API items/s ÷ raw same-rows items/s (an item counts with its prediction, "
            "its label and its audit frame row, if any). Raw item rows/s is the earlier, "
            "narrower baseline, kept for comparison: the same `item` rows alone (ids from the "
            "database), written last, for a third queue, in one `executemany` / `COPY item` "
            "transaction.",
            "",
            f"- Date: {when}; commit {info['commit']}",
            f"- Machine: {info['platform']}; {info['cpu']}; {info['cores']} cores; "
            f"{info['memory']} RAM; "
            f"load average before the run {info['load']}",
            f"- Python {info['python']}; SQLite {info['sqlite']}"
            + (f"; PostgreSQL {versions['postgresql']}" if "postgresql" in versions else ""),
            "",
            table(results),
            "",
            "Routing of the generated items (3 candidates summing to 1, about half confident): "
            + "; ".join(f"{r['backend']} {_mix(r['routed'])}" for r in results)
            + ". Rows stored by each path (checked after the run): "
            + "; ".join(_stored(r) for r in results)
            + ".",
            "",
            "Beyond the raw inserts, the API path authenticates the token, validates every row "
            "with pydantic, checks prediction labels against the queue, routes each item "
            "(threshold, margin, deterministic audit draw), skips duplicates (PostgreSQL: `COPY` "
            "into a temporary table, then `INSERT ... SELECT ... ON CONFLICT DO NOTHING "
            "RETURNING`; SQLite: a lookup of existing external ids, then `executemany` and a "
            "read-back of the new ids) and builds the prediction and label rows from the ids it "
            "got back, all in one transaction per batch.",
            END,
        ]
    )


def write_docs(text: str, start: str = START, end: str = END) -> None:
    """Replaces the section between its markers in docs/BENCHMARKS.md, or appends it."""
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    current = DOCS.read_text() if DOCS.exists() else DOC_INTRO
    if start in current and end in current:
        head, rest = current.split(start, 1)
        _, tail = rest.split(end, 1)
        new = head + text + tail
    else:
        new = current.rstrip("\n") + "\n\n" + text + "\n"
    DOCS.write_text(new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--profile", action="store_true", help="cProfile the server side; no docs")
    ap.add_argument("--top", type=int, default=30, help="profile rows to print")
    ap.add_argument(
        "--profile-out",
        default=None,
        help="with --profile: also dump pstats to FILE.<backend>.prof",
    )
    ap.add_argument("--no-docs", action="store_true", help="print only; leave docs/ alone")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))

    info = machine_info()  # before the run, so the load average is the machine's, not ours
    items = make_items(args.items)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = []
    for backend in backends:
        print(
            f"{backend}: pushing {args.items:,} items in batches of {args.batch:,} ...", flush=True
        )
        results.append(run_backend(backend, items, args.batch, args.profile))
        r = results[-1]
        print(
            f"  API {r['api_s']:.2f}s  raw same rows {r['raw_s']:.2f}s  "
            f"raw items only {r['items_only_s']:.2f}s  routed {r['routed']}\n"
            f"  stored (items, predictions, labels, frame rows): API {r['api_rows']}  "
            f"raw {r['raw_rows']}",
            flush=True,
        )

    print()
    print(table(results))
    for r in results:
        if "profile" in r:
            if args.profile_out:
                r["profile"].dump_stats(f"{args.profile_out}.{r['backend']}.prof")
            for key in ("tottime", "cumulative"):
                out = io.StringIO()
                stats = pstats.Stats(r["profile"], stream=out)
                stats.sort_stats(key).print_stats(args.top)
                print(f"\n=== {r['backend']}: server-side profile by {key} ===")
                print(out.getvalue())
    if not (args.profile or args.no_docs):
        write_docs(section(results, info))
        print(f"\nwrote {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
