"""The claim statement at a million waiting items, in each claim order.

One queue holds `--items` pending items (default 1,000,000), each with an
`uncertainty_rank` from app.queues.order (a random margin, its external id), inserted raw
(sqlite3 executemany in one transaction; psycopg COPY), then ANALYZE. Timed: `claim_next`
(app.review.service: lease sweep + the one UPDATE … WHERE id = (SELECT … ORDER BY … LIMIT
1) + the claim row), one write transaction per claim as the API does, `--claims` times per
order by one reviewer, the queue's policy switched between the orders (arrival first), then
each order again with a service level (`sla_hours`, SLA_HOURS): arrivals are spread over the
last ARRIVAL_SPAN_HOURS, so the oldest items are nearing their deadline and the claim's second
probe (ix_item_claim_deadline) finds them. Also shown: the claim statement's plan (EXPLAIN
QUERY PLAN / EXPLAIN) as the database chose it with the table's statistics, no planner
settings changed.

    .venv/bin/python bench/claim_order.py                         # SQLite and PostgreSQL
    .venv/bin/python bench/claim_order.py --backend sqlite --items 200000 --no-docs

PostgreSQL: `BENCH_PG_URL` (default postgresql://postgres@127.0.0.1:5432/loupe_bench).
**The script drops and re-creates that database's `public` schema before and after**, so
give it a database of its own.
"""

# ruff: noqa: T201  (a command-line report: printing is its job)
from __future__ import annotations

import argparse
import os
import platform
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LOUPE_ENV", "development")

from sqlalchemy import bindparam, text  # noqa: E402

from app.db import dispose_all, get_engine, session_scope, upgrade_database  # noqa: E402
from app.models import User  # noqa: E402
from app.queues.order import uncertainty_rank  # noqa: E402
from app.queues.service import create_queue, get_queue  # noqa: E402
from app.queues.sla import nearing_before  # noqa: E402
from app.review.service import _claim_sql, claim_next  # noqa: E402

DOCS = ROOT / "docs" / "BENCHMARKS.md"
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/loupe_bench")
START, END = "<!-- claim-order:start -->", "<!-- claim-order:end -->"
CHUNK = 50_000
# Arrivals spread over the last day; with a 30 h SLA, items older than 22.5 h (NEARING_SHARE
# of it), about the oldest 6%, are nearing their deadline.
ARRIVAL_SPAN_HOURS = 24
SLA_HOURS = 30
RUNS = [
    ("arrival", None),
    ("uncertainty", None),
    ("arrival", SLA_HOURS),
    ("uncertainty", SLA_HOURS),
]


def _rows(n: int, seed: int = 1):
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(tzinfo=None)
    step = timedelta(hours=ARRIVAL_SPAN_HOURS) / n
    for i in range(n):
        ext = f"b{i:07d}"
        # Producers' margins: many confident items, a tail of unsure ones; 5% unscored.
        margin = None if rng.random() < 0.05 else rng.betavariate(2, 1.2)
        arrived = (now - (n - i) * step).isoformat(sep=" ")
        yield (1, ext, "{}", "pending", 0, "review", uncertainty_rank(margin, ext), arrived)


COLUMNS = (
    "queue_id, external_id, payload, status, priority, route_decision, uncertainty_rank, created_at"
)


def _fill_sqlite(path: Path, n: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(f"INSERT INTO item ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _rows(n))
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def _fill_postgres(url: str, n: int) -> None:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY item ({COLUMNS}) FROM STDIN") as copy:
            for row in _rows(n):
                copy.write_row(row)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE item")


def _reset_postgres(url: str) -> None:
    engine = get_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    dispose_all()


def _plan(engine, order: str, sla_hours: float | None = None) -> list[str]:
    sqlite = engine.dialect.name == "sqlite"
    sql = _claim_sql(sqlite, True, order, sla=sla_hours is not None)
    stmt = text(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + sql)
    stmt = stmt.bindparams(bindparam("excluded", expanding=True))
    now = datetime.now(UTC)
    params = {
        "user_id": 1,
        "token": "t",
        "queue_id": 1,
        "expires_at": now,
        "excluded": [1, 2],
    }
    if sla_hours is not None:
        # As UTCDateTime binds it: naive UTC on SQLite.
        cutoff = nearing_before(sla_hours=sla_hours, now=now)
        params["nearing_before"] = cutoff.replace(tzinfo=None) if sqlite else cutoff
    with engine.begin() as conn:
        return [str(r[-1] if sqlite else r[0]) for r in conn.execute(stmt, params)]


def run_backend(name: str, url: str, n: int, claims: int) -> dict:
    if name == "postgresql":
        _reset_postgres(url)
    upgrade_database(url)
    engine = get_engine(url)
    with session_scope(engine) as s:
        create_queue(session=s, data={"name": "bench", "labels": ["a", "b"], "policy": {}})
        s.add(User(name="rev", role="reviewer"))
    started = time.perf_counter()
    if name == "sqlite":
        _fill_sqlite(Path(url.removeprefix("sqlite:///")), n)
    else:
        _fill_postgres(url, n)
    fill = time.perf_counter() - started
    print(f"{name}: {n:,} items in {fill:.0f}s", flush=True)
    out = {"fill_seconds": fill, "orders": {}}
    for order, sla_hours in RUNS:
        with session_scope(engine) as s:
            get_queue(session=s, name="bench").policy = {"order": order, "sla_hours": sla_hours}
        times, first = [], []
        for _ in range(claims):
            t0 = time.perf_counter()
            with session_scope(engine) as s:
                queue = get_queue(session=s, name="bench")
                user = s.query(User).filter_by(name="rev").one()
                claim = claim_next(session=s, queue=queue, user=user)
                item_id = claim.item_id
            times.append((time.perf_counter() - t0) * 1000)
            first.append(item_id)
        with engine.connect() as conn:
            claimed = [
                conn.execute(
                    text("SELECT uncertainty_rank, created_at FROM item WHERE id = :i"), {"i": i}
                ).one()
                for i in first
            ]
        ranks = [r[0] for r in claimed]
        arrivals = [str(r[1]) for r in claimed]
        times.sort()
        run = order if sla_hours is None else f"{order} + SLA {sla_hours} h"
        out["orders"][run] = {
            "p50": statistics.median(times),
            "p95": times[int(0.95 * (len(times) - 1))],
            "max": times[-1],
            "plan": _plan(engine, order, sla_hours),
            # With an SLA the claimed items are the nearing ones, oldest arrival first.
            "in_order": (
                arrivals == sorted(arrivals)
                if sla_hours is not None
                else ranks == sorted(ranks)
                if order == "uncertainty"
                else first == sorted(first)
            ),
        }
        print(run, {k: v for k, v in out["orders"][run].items() if k != "plan"}, flush=True)
    if name == "postgresql":
        dispose_all()
        _reset_postgres(url)
    return out


def report(results: dict, args, seconds: float) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    lines = [
        "## Claim order at a million waiting items",
        "",
        "`bench/claim_order.py`: one queue with "
        f"{args.items:,} pending items (5% unscored, the rest with a random margin, ranked by "
        "`app.queues.order.uncertainty_rank`), inserted raw, then ANALYZE. Timed: "
        "`claim_next` (the lease sweep, the one claim statement, the claim row) in its own "
        f"write transaction, {args.claims} claims per order by one reviewer; the queue's policy "
        "switched from `arrival` to `uncertainty` in between, then each again with "
        f"`sla_hours: {SLA_HOURS}` (arrivals spread over the last {ARRIVAL_SPAN_HOURS} h, so "
        "the oldest ~6% are nearing their deadline and come first). *In order* = the claimed "
        "items came in the order's sequence (ids ascending for arrival, ranks ascending for "
        "uncertainty, arrival times ascending with an SLA: the nearing items, oldest first). "
        "The plan is the database's own choice for the claim statement (with "
        "a reviewer's skipped items excluded), with the table's statistics.",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {platform.platform()}; {os.cpu_count()} cores; load average {load} "
        "after the run (shared with other work)",
        f"- Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}",
        f"- Code: {commit}",
        f"- Command: `.venv/bin/python bench/claim_order.py --items {args.items} "
        f"--claims {args.claims}`; the whole run took {seconds / 60:.1f} min",
        "",
        "| database | order | claim p50 ms | p95 ms | max ms | in order | plan |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for backend, result in results.items():
        for order, r in result["orders"].items():
            in_order = r["in_order"]
            plan = "; ".join(
                re.sub(r"\s+\(cost=[^)]*\)", "", p).strip().replace("|", "/") for p in r["plan"]
            )
            lines.append(
                f"| {backend} | {order} | {r['p50']:.1f} | {r['p95']:.1f} | {r['max']:.1f} "
                f"| {'yes' if in_order else 'no'} | `{plan}` |"
            )
    return "\n".join(lines) + "\n"


def write_docs(section: str) -> None:
    text_ = DOCS.read_text()
    block = f"{START}\n{section}{END}"
    if START in text_:
        head, rest = text_.split(START, 1)
        text_ = head + block + rest.split(END, 1)[1]
    else:
        text_ = text_.rstrip() + "\n\n" + block + "\n"
    DOCS.write_text(text_)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    results = {}
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            results["SQLite"] = run_backend(
                "sqlite", f"sqlite:///{tmp}/claims.db", args.items, args.claims
            )
            dispose_all()
    if args.backend in ("postgresql", "both"):
        results["PostgreSQL"] = run_backend("postgresql", PG_URL, args.items, args.claims)
    section = report(results, args, time.perf_counter() - started)
    print(section)
    if not args.no_docs:
        write_docs(section)
        print("wrote docs/BENCHMARKS.md")


if __name__ == "__main__":
    main()
