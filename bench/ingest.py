"""Ingest benchmark: items/s through the real HTTP API against a raw bulk insert.

Run by hand (not part of the test suite):

    .venv/bin/python bench/ingest.py [--items 200000] [--batch 5000]
                                     [--backend sqlite|postgresql|both] [--profile] [--no-docs]

For each backend it migrates a fresh database, creates a queue, an admin and a token, serves
`create_app()` with werkzeug in a thread and POSTs pre-serialised NDJSON batches over one
keep-alive connection. The baseline, in the same run, writes the same `item` rows for a second
queue with the plainest fast path the database has (sqlite3 `executemany` in one transaction;
psycopg 3 `COPY ... FROM STDIN`). The table is printed and written between the
`<!-- ingest:start -->` / `<!-- ingest:end -->` markers of docs/BENCHMARKS.md.

`--profile` runs cProfile around every request on the server side and prints the top
functions (use it with a smaller `--items`; the figures are then not written to the docs).

PostgreSQL: `postgresql://postgres@127.0.0.1:5432/test` (trust auth, override with
BENCH_PG_URL); its `public` schema is dropped before and after the run, so never point it at a
database a test run is using at the same time. Redis: REDIS_URL or
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
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "BENCHMARKS.md"
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
LABELS = ["legit", "fraud", "duplicate"]
START, END = "<!-- ingest:start -->", "<!-- ingest:end -->"
ITEM_COLUMNS = ("queue_id", "external_id", "payload", "status", "priority",
                "route_decision", "route_reason", "created_at")

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
_WORDS = ("refund customer called about card charge twice order delivered late account "
          "password reset new device login gift shipping address changed urgent wire "
          "transfer invoice subscription cancelled chargeback merchant review").split()


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
        items.append({
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
        })
    return items


def ndjson_batches(items: list[dict], batch: int) -> list[bytes]:
    return [
        "\n".join(json.dumps(it, separators=(",", ":")) for it in items[i : i + batch]).encode()
        for i in range(0, len(items), batch)
    ]


def raw_rows(items: list[dict], queue_id: int, queue_name: str, policy, now: datetime,
             sqlite_style: bool) -> list[tuple]:
    """The exact `item` columns the ingest writes, computed before the clock starts."""
    from app.ingest.routing import route_item
    from app.ingest.service import STATUS_FOR_ROUTE

    created = now.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite_style else now
    rows = []
    for it in items:
        cands = sorted(it["prediction"]["candidates"], key=lambda c: -c["score"])
        r = route_item(policy=policy, candidates=cands, queue_name=queue_name,
                       external_id=it["external_id"])
        rows.append((queue_id, it["external_id"], json.dumps(it["payload"]),
                     STATUS_FOR_ROUTE[r.decision], it["priority"], r.decision, r.reason, created))
    return rows


# ---------------------------------------------------------------------------------------------
# Machine


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
    return {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(), "memory": mem,
            "load": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version}


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

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def pg_version() -> str:
    import psycopg

    with psycopg.connect(PG_URL) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def raw_sqlite(db_file: Path, rows: list[tuple]) -> float:
    conn = sqlite3.connect(db_file, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    marks = ", ".join("?" * len(ITEM_COLUMNS))
    sql = f"INSERT INTO item ({', '.join(ITEM_COLUMNS)}) VALUES ({marks})"
    t0 = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(sql, rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def raw_postgres(rows: list[tuple]) -> float:
    import psycopg

    with psycopg.connect(PG_URL) as conn:
        t0 = time.perf_counter()
        copy_sql = f"COPY item ({', '.join(ITEM_COLUMNS)}) FROM STDIN"
        with conn.cursor() as cur, cur.copy(copy_sql) as cp:
            for row in rows:
                cp.write_row(row)
        conn.commit()
        return time.perf_counter() - t0


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
    from app import create_app
    from app.auth.service import create_token, create_user
    from app.cli import upgrade_database
    from app.db import dispose_all, get_engine, session_scope
    from app.queues.service import create_queue, policy_of
    from app.settings import Settings

    settings = Settings()
    url = settings.resolved_database_url()
    server = None
    try:
        upgrade_database(url)
        with session_scope(get_engine(url)) as s:
            api_queue = create_queue(session=s, data={"name": "bench", "labels": LABELS})
            raw_queue = create_queue(session=s, data={"name": "bench-raw", "labels": LABELS})
            admin = create_user(session=s, name="bench-admin", role="admin", password=None)
            token = create_token(session=s, user=admin)
            raw_queue_id, policy = raw_queue.id, policy_of(raw_queue)
        version = sqlite3.sqlite_version if backend == "sqlite" else pg_version()

        app = create_app(settings)
        wsgi = _Profiled(app) if profile else app
        server, _thread = serve(wsgi)
        batches = ndjson_batches(items, batch)
        created, routed, api_s = push(server.server_port, api_queue.name, token, batches)
        if created != len(items):
            raise SystemExit(f"{backend}: created {created} of {len(items)} items")

        rows = raw_rows(items, raw_queue_id, raw_queue.name, policy, datetime.now(UTC),
                        sqlite_style=backend == "sqlite")
        if backend == "sqlite":
            raw_s = raw_sqlite(instance / "loupe.db", rows)
        else:
            raw_s = raw_postgres(rows)

        result = {"backend": backend, "version": version, "items": len(items), "batch": batch,
                  "api_s": api_s, "raw_s": raw_s, "api_per_s": len(items) / api_s,
                  "raw_per_s": len(rows) / raw_s, "routed": routed}
        result["ratio"] = result["api_per_s"] / result["raw_per_s"]
        if profile:
            result["profile"] = wsgi.profile
        return result
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        dispose_all()
        shutil.rmtree(instance, ignore_errors=True)
        if backend == "postgresql":
            reset_pg_schema()


# ---------------------------------------------------------------------------------------------
# Report


def table(results: list[dict]) -> str:
    lines = ["| backend | items | batch | API items/s | raw rows/s | ratio |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['backend']} | {r['items']:,} | {r['batch']:,} | {r['api_per_s']:,.0f} "
                     f"| {r['raw_per_s']:,.0f} | {r['ratio']:.2f} |")
    return "\n".join(lines)


def _mix(routed: dict) -> str:
    total = sum(routed.values()) or 1
    return ", ".join(
        f"{k.replace('_', '-')} {100 * n / total:.0f}%" for k, n in sorted(routed.items())
    )


def section(results: list[dict], info: dict) -> str:
    versions = {r["backend"]: r["version"] for r in results}
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    raw_how = []
    if "sqlite" in versions:
        raw_how.append(
            "SQLite: `sqlite3` `executemany` in one transaction, WAL, synchronous=NORMAL"
        )
    if "postgresql" in versions:
        raw_how.append("PostgreSQL: psycopg 3 `COPY item (...) FROM STDIN`")
    return "\n".join([
        START,
        "## Ingest",
        "",
        "`bench/ingest.py`: items pushed to `POST /api/v1/queues/<name>/items` as NDJSON "
        "(one keep-alive connection, batches sent one after another, bodies serialised before "
        "the clock starts; the werkzeug server runs in the same process) against the same `item` "
        f"rows written directly ({'; '.join(raw_how)}). Ratio = API items/s ÷ raw rows/s.",
        "",
        f"- Date: {when}",
        f"- Machine: {info['platform']}; {info['cpu']}; {info['cores']} cores; "
        f"{info['memory']} RAM; "
        f"load average before the run {info['load']}",
        f"- Python {info['python']}; SQLite {info['sqlite']}"
        + (f"; PostgreSQL {versions['postgresql']}" if "postgresql" in versions else ""),
        "",
        table(results),
        "",
        "Routing of the generated items (3 candidates summing to 1, about half confident): "
        + "; ".join(f"{r['backend']} {_mix(r['routed'])}" for r in results) + ".",
        "",
        "Beyond the raw insert, the API path authenticates the token, validates every row with "
        "pydantic, checks prediction labels against the queue, routes each item (threshold, "
        "margin, deterministic audit draw), skips duplicates with `INSERT ... ON CONFLICT DO "
        "NOTHING ... RETURNING` in 1,000-row statements, and also writes a `prediction` row per "
        "item and a `label` row per auto-accepted item, all in one transaction per batch.",
        END,
    ])


def write_docs(text: str) -> None:
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    current = DOCS.read_text() if DOCS.exists() else DOC_INTRO
    if START in current and END in current:
        head, rest = current.split(START, 1)
        _, tail = rest.split(END, 1)
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
    ap.add_argument("--profile-out", default=None,
                    help="with --profile: also dump pstats to FILE.<backend>.prof")
    ap.add_argument("--no-docs", action="store_true", help="print only; leave docs/ alone")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))

    info = machine_info()  # before the run, so the load average is the machine's, not ours
    items = make_items(args.items)
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = []
    for backend in backends:
        print(f"{backend}: pushing {args.items:,} items in batches of {args.batch:,} ...",
              flush=True)
        results.append(run_backend(backend, items, args.batch, args.profile))
        r = results[-1]
        print(f"  API {r['api_s']:.2f}s  raw {r['raw_s']:.2f}s  routed {r['routed']}", flush=True)

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
