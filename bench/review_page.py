"""Review page benchmark: server time to render the review page and the htmx decision swap
with 100,000 items waiting.

Run by hand (not part of the test suite):

    .venv/bin/python bench/review_page.py [--waiting 100000] [--reviewers 4]
                                          [--decisions 500] [--pages 200]
                                          [--backend sqlite|postgresql|both]
                                          [--profile] [--no-analyze] [--no-docs]

For each backend it migrates a fresh database and builds the demo queue with
`app.demo.seed.seed_demo` (the `claims` queue, `display={"fields": FIELDS}`, 600 labelled
claims and a trained model). It then serves `create_app()` with werkzeug in a thread and, as
the `producer` user, pushes generated claims *without predictions* to
`POST /api/v1/queues/claims/items` (NDJSON, batches of 5,000) so that the model scores and
routes them, until at least `--waiting` items plus those the run will decide are pending.
`--reviewers` reviewers, members of the queue, log in through the real /login form (CSRF token
parsed from the page, the `session` cookie carried by hand over `http.client`).

A WSGI middleware times every request on the server side (time.perf_counter around the
call and the iteration of the body). Measured, after one unrecorded page per reviewer:

- page: `GET /queues/claims/review` as a full page reloaded: before each one `POST /me/leave`,
  as the browser's sendBeacon does on leaving a page, then the page takes the held item up
  again (the first page of the session, unrecorded, claimed it);
- decide, one reviewer at a time: the htmx decision `POST .../claims/<token>/decide`
  (`HX-Request: true`, `X-CSRFToken`, label = the first candidate button), which stores the
  decision and claims and renders the next item as the swapped fragment;
- decide, all reviewers at once: the same, one thread per reviewer.

On PostgreSQL the script runs `VACUUM ANALYZE` after the ingest, as autovacuum would
(`--no-analyze` leaves the statistics as the bulk insert left them: the planner then looks up an
item's latest prediction by scanning `prediction` backwards by id, tens of ms per lookup).

`--profile` (and, without it, whenever a decision p95 is above the 30 ms bar) then runs
cProfile around 50 more decisions on the server side and prints the top functions (these
requests are not part of the figures). The table is printed and written between the
`<!-- review-page:start -->` / `<!-- review-page:end -->` markers of docs/BENCHMARKS.md.

PostgreSQL: `postgresql://postgres@127.0.0.1:5432/loupe_bench` (trust auth, override with
BENCH_PG_URL), created when missing; its `public` schema is dropped before and after the run,
so never point it at a database a test run is using. Redis: BENCH_REDIS_URL or
`redis://127.0.0.1:6379/14`; decisions enqueue training examples there (no worker runs), and
that database is flushed before and after each backend, so give the benchmark one of its own.
"""

# ruff: noqa: T201  (a command-line report: printing is its job)
from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import json
import os
import pstats
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # the shared helpers of bench/ingest.py

from ingest import (  # noqa: E402
    machine_info,
    pg_version,
    reset_pg_schema,
    serve,
    tear_down,
    write_docs,
)

DOCS = ROOT / "docs" / "BENCHMARKS.md"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
START, END = "<!-- review-page:start -->", "<!-- review-page:end -->"
QUEUE = "claims"
BAR_MS = 30.0
REVIEW_PATH = f"/queues/{QUEUE}/review"

_CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_HX_HEADERS = re.compile(r"hx-headers='(\{[^']*\})'")
_CLAIM = re.compile(r'<section id="review-item"[^>]*?data-claim="([^"]+)"')
_CANDIDATE = re.compile(r'<button\b[^>]*\bvalue="([^"]*)"[^>]*class="candidate\b')
_WAITING = re.compile(r"([\d,]+) waiting")


# ---------------------------------------------------------------------------------------------
# Server side: timing (and optionally profiling) middleware


class _Timed:
    """WSGI middleware: server time and body size of each request, by phase.

    The phase comes from the client's `X-Bench-Phase` header; the clock covers the app call
    and the iteration of its body (the view, the template and the response), as a WSGI server
    sees it. With `profile` set, requests of the phase "profile" also run under cProfile (in
    the thread that serves them; one at a time, so one profile per request, merged after).
    """

    def __init__(self, app):
        self.app = app
        self.samples: list[tuple[str, str, str, int, float, int]] = []
        self.profiles: list[cProfile.Profile] = []

    def __call__(self, environ, start_response):
        phase = environ.get("HTTP_X_BENCH_PHASE", "")
        status = []

        def _start(code, headers, exc_info=None):
            status.append(int(code.split(" ", 1)[0]))
            return start_response(code, headers, exc_info)

        prof = cProfile.Profile() if phase == "profile" else None
        t0 = time.perf_counter()
        if prof is not None:
            prof.enable()
        try:
            body = b"".join(self.app(environ, _start))
        finally:
            if prof is not None:
                prof.disable()
                self.profiles.append(prof)
        ms = (time.perf_counter() - t0) * 1000
        self.samples.append(
            (
                phase,
                environ["REQUEST_METHOD"],
                environ.get("PATH_INFO", ""),
                status[0] if status else 0,
                ms,
                len(body),
            )
        )
        return [body]


# ---------------------------------------------------------------------------------------------
# Client side: a reviewer with a session cookie, over one keep-alive connection


class Reviewer:
    def __init__(self, port: int, name: str, password: str):
        self.name, self.password = name, password
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.cookies: dict[str, str] = {}
        self.csrf: str | None = None
        self.claim: str | None = None
        self.label: str | None = None
        self.client_ms: list[float] = []

    def request(self, method, path, *, body=None, headers=None, phase="", expect=(200,)):
        h = {"X-Bench-Phase": phase, **(headers or {})}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            body = urlencode(body).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        t0 = time.perf_counter()
        self.conn.request(method, path, body=body, headers=h)
        resp = self.conn.getresponse()
        data = resp.read()
        self.client_ms.append((time.perf_counter() - t0) * 1000)
        for value in resp.headers.get_all("Set-Cookie") or []:
            for key, morsel in SimpleCookie(value).items():
                self.cookies[key] = morsel.value
        if resp.status not in expect:
            raise SystemExit(f"{self.name}: {method} {path} answered {resp.status}: {data[:300]!r}")
        return resp, data.decode()

    def login(self) -> None:
        _, page = self.request("GET", "/login", phase="login")
        token = _CSRF_INPUT.search(page)
        if token is None:
            raise SystemExit("no csrf_token in the login form")
        form = {"csrf_token": token.group(1), "name": self.name, "password": self.password}
        resp, _ = self.request("POST", "/login", body=form, phase="login", expect=(303,))
        if "session" not in self.cookies:
            raise SystemExit(f"{self.name}: no session cookie after logging in")

    def _read_item(self, html: str) -> None:
        claim, candidate = _CLAIM.search(html), _CANDIDATE.search(html)
        if claim is None or candidate is None:
            raise SystemExit(f"{self.name}: no claimed item with candidates in {html[:400]!r}")
        self.claim, self.label = claim.group(1), candidate.group(1)

    def page(self, phase: str) -> str:
        """The full review page: claims the next item when the reviewer holds none."""
        _, html = self.request("GET", REVIEW_PATH, phase=phase)
        hx = _HX_HEADERS.search(html)
        if hx is None:
            raise SystemExit("no hx-headers on the page body")
        self.csrf = json.loads(hx.group(1))["X-CSRFToken"]
        self._read_item(html)
        return html

    def leave(self) -> None:
        """What the browser's sendBeacon does on leaving the page: the held item stays the
        reviewer's for a short grace, in which the next page takes it up again."""
        self.request(
            "POST",
            "/me/leave",
            body={"csrf_token": self.csrf},
            phase="leave",
            expect=(204,),
        )

    def decide(self, phase: str) -> str:
        """The htmx decision on the first candidate; the answer is the next item's fragment."""
        path = f"/queues/{QUEUE}/claims/{self.claim}/decide"
        headers = {
            "HX-Request": "true",
            "HX-Target": "review-item",
            "HX-Current-URL": f"http://127.0.0.1{REVIEW_PATH}",
            "X-CSRFToken": self.csrf,
        }
        # What htmx sends for the form: its inputs plus the button that was pressed.
        body = {"csrf_token": self.csrf, "label": self.label, "other": ""}
        _, html = self.request("POST", path, body=body, headers=headers, phase=phase)
        if "Saved" not in html:
            raise SystemExit(f"{self.name}: decision not saved: {html[:400]!r}")
        self._read_item(html)
        return html


# ---------------------------------------------------------------------------------------------
# Data


def claim_batches(start: int, batch: int, seed: int):
    """Endless NDJSON batches of demo-like claims without predictions (ids bench-0000001, ...)."""
    from app.demo.claims import generate_claims

    n = start
    while True:
        rows = generate_claims(batch, seed=seed + n)
        lines = []
        for r in rows:
            n += 1
            lines.append(
                json.dumps(
                    {"external_id": f"bench-{n:07d}", "payload": r["payload"]},
                    separators=(",", ":"),
                )
            )
        yield batch, "\n".join(lines).encode()


def push_until(port: int, token: str, engine, queue_id: int, target: int, batch: int) -> dict:
    """Ingests batches until `target` items of the queue are pending; what it took."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Content-Type": "application/x-ndjson", "Authorization": f"Bearer {token}"}
    sent, routed, api_s = 0, {}, 0.0
    pending = count_pending(engine, queue_id)
    batches = claim_batches(0, batch, seed=1000)
    while pending < target:
        _, body = next(batches)
        t0 = time.perf_counter()
        conn.request("POST", f"/api/v1/queues/{QUEUE}/items", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        api_s += time.perf_counter() - t0
        if resp.status != 200:
            raise SystemExit(f"ingest answered {resp.status}: {data[:500]!r}")
        answer = json.loads(data)
        sent += answer["created"]
        for key, k in answer["routed"].items():
            routed[key] = routed.get(key, 0) + k
        pending = count_pending(engine, queue_id)
        print(f"  ingested {sent:,}, pending {pending:,}", end="\r", flush=True)
    print()
    conn.close()
    return {"ingested": sent, "routed": routed, "ingest_s": api_s, "pending": pending}


def count_pending(engine, queue_id: int) -> int:
    from sqlalchemy import text

    with engine.connect() as c:
        return c.execute(
            text("SELECT count(*) FROM item WHERE queue_id = :q AND status = 'pending'"),
            {"q": queue_id},
        ).scalar_one()


def count_scored(engine, queue_id: int) -> tuple[int, int]:
    """(items, items whose prediction came from the queue's own model)."""
    from sqlalchemy import text

    with engine.connect() as c:
        items = c.execute(
            text("SELECT count(*) FROM item WHERE queue_id = :q"), {"q": queue_id}
        ).scalar_one()
        scored = c.execute(
            text(
                "SELECT count(DISTINCT p.item_id) FROM prediction p JOIN item i ON i.id = p.item_id"
                " WHERE i.queue_id = :q AND p.source = 'model'"
            ),
            {"q": queue_id},
        ).scalar_one()
    return items, scored


def pg_setting(name: str) -> str:
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        return conn.execute(f"SHOW {name}").fetchone()[0]


def pg_vacuum_analyze() -> None:
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def flush_redis() -> None:
    from redis import Redis

    Redis.from_url(REDIS_URL).flushdb()


# ---------------------------------------------------------------------------------------------
# Statistics


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))
    return s[int(k)]


def summarise(samples, phase: str, method: str, suffix: str, client_ms=None) -> dict:
    rows = [r for r in samples if r[0] == phase and r[1] == method and r[2].endswith(suffix)]
    bad = [r for r in rows if r[3] != 200]
    if bad:
        raise SystemExit(f"{phase}: {len(bad)} requests did not answer 200: {bad[:3]}")
    ms = [r[4] for r in rows]
    size = [r[5] for r in rows]
    return {
        "n": len(rows),
        "p50": pct(ms, 50),
        "p95": pct(ms, 95),
        "p99": pct(ms, 99),
        "max": max(ms),
        "mean": sum(ms) / len(ms),
        "size_p50": pct(size, 50),
        "size_max": max(size),
        "client_p95": pct(client_ms, 95) if client_ms else None,
    }


# ---------------------------------------------------------------------------------------------
# One backend


def run_backend(backend: str, args) -> dict:
    instance = Path(tempfile.mkdtemp(prefix=f"loupe-bench-review-{backend}-"))
    os.environ["LOUPE_INSTANCE"] = str(instance)
    os.environ["REDIS_URL"] = REDIS_URL
    os.environ.setdefault("SECRET_KEY", "bench-" + os.urandom(16).hex())
    if backend == "postgresql":
        os.environ["DATABASE_URL"] = os.environ.get(
            "BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/loupe_bench"
        )
        reset_pg_schema()
    else:
        os.environ.pop("DATABASE_URL", None)
    flush_redis()

    # Imported only now: Settings reads the environment set above.
    from sqlalchemy import select

    from app import create_app, settle_heap
    from app.auth.service import add_membership, create_user
    from app.db import get_engine, session_scope, upgrade_database
    from app.demo.seed import seed_demo
    from app.models import ModelVersion, Queue
    from app.settings import Settings

    settings = Settings()
    url = settings.resolved_database_url()
    engine = get_engine(url)
    server = None
    try:
        upgrade_database(url)
        t0 = time.perf_counter()
        login = seed_demo(engine)
        seed_s = time.perf_counter() - t0
        password = "bench-" + os.urandom(8).hex()
        names = [f"bench-reviewer-{i + 1}" for i in range(args.reviewers)]
        with session_scope(engine) as s:
            queue = s.scalar(select(Queue).where(Queue.name == QUEUE))
            queue_id = queue.id
            model = s.scalar(
                select(ModelVersion.version).where(
                    ModelVersion.queue_id == queue.id, ModelVersion.active
                )
            )
            for name in names:
                user = create_user(session=s, name=name, role="reviewer", password=password)
                add_membership(session=s, user=user, queue=queue)
        version = sqlite3.sqlite_version if backend == "sqlite" else pg_version()

        app = create_app(settings)
        settle_heap()  # as `loupe serve` and gunicorn's post_worker_init do
        wsgi = _Timed(app)
        server, _thread = serve(wsgi)
        port = server.server_port

        # Enough waiting items that at least `waiting` are still pending after the last
        # decision (each decision takes one item; a reloaded page takes up the one held).
        decided = 2 * args.decisions + (args.profile_requests if args.profile else 0)
        target = args.waiting + decided + 2 * args.reviewers
        print(f"{backend}: seeded the demo queue in {seed_s:.1f}s; ingesting to {target:,} pending")
        ingest = push_until(port, login.token, engine, queue_id, target, args.batch)
        items, scored = count_scored(engine, queue_id)
        autovacuum = None
        if backend == "postgresql":
            autovacuum = pg_setting("autovacuum")
            if not args.no_analyze:
                # What autovacuum does after a bulk insert this size (it is off on some
                # servers): without statistics the planner scans `prediction` backwards by id
                # for an item's latest prediction, tens of ms per lookup at this size.
                pg_vacuum_analyze()

        reviewers = [Reviewer(port, name, password) for name in names]
        for r in reviewers:
            r.login()
            r.page("warmup")  # first page of the session: claims, not recorded
        pending_before = count_pending(engine, queue_id)

        # (a) Full pages, each a reload: leave the page, then load it again (it takes the held
        # item up again).
        for r in reviewers:
            r.client_ms.clear()
            for _ in range(args.pages // len(reviewers)):
                r.leave()
                r.page("page")
        page_client = [ms for r in reviewers for ms in r.client_ms[1::2]]

        # (b) htmx decisions, one reviewer after another.
        per = args.decisions // len(reviewers)
        for r in reviewers:
            r.client_ms.clear()
            for _ in range(per):
                r.decide("seq")
        seq_client = [ms for r in reviewers for ms in r.client_ms]

        # (c) htmx decisions, all reviewers at the same time (one thread each).
        for r in reviewers:
            r.client_ms.clear()
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(reviewers))

        def work(rv: Reviewer) -> None:
            try:
                barrier.wait()
                for _ in range(per):
                    rv.decide("conc")
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(r,)) for r in reviewers]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        conc_wall = time.perf_counter() - t0
        if errors:
            raise errors[0]
        conc_client = [ms for r in reviewers for ms in r.client_ms]
        pending_after = count_pending(engine, queue_id)

        samples = list(wsgi.samples)
        result = {
            "backend": backend,
            "version": version,
            "model": model,
            "seed_s": seed_s,
            **ingest,
            "items": items,
            "scored": scored,
            "pending_before": pending_before,
            "pending_after": pending_after,
            "autovacuum": autovacuum,
            "analyzed": backend == "postgresql" and not args.no_analyze,
            "reviewers": len(reviewers),
            "page": summarise(samples, "page", "GET", REVIEW_PATH, page_client),
            "seq": summarise(samples, "seq", "POST", "/decide", seq_client),
            "conc": summarise(samples, "conc", "POST", "/decide", conc_client),
            "conc_wall": conc_wall,
        }

        worst = max(result["seq"]["p95"], result["conc"]["p95"], result["page"]["p95"])
        if args.profile or (worst > BAR_MS and not args.no_auto_profile):
            r = reviewers[0]
            for _ in range(args.profile_requests):
                r.decide("profile")
            stats = pstats.Stats(wsgi.profiles[0])
            for p in wsgi.profiles[1:]:
                stats.add(p)
            result["profile"] = stats
            result["profile_n"] = len(wsgi.profiles)
        return result
    finally:
        tear_down(server, instance, backend)
        flush_redis()


# ---------------------------------------------------------------------------------------------
# Report


ROWS = (
    ("page", "full page `GET /queues/claims/review` (claims)"),
    ("seq", "htmx decide + next item, 1 reviewer at a time"),
    ("conc", "htmx decide + next item, {n} reviewers at once"),
)


def table(r: dict) -> str:
    lines = [
        "| request | n | p50 ms | p95 ms | p99 ms | max ms | HTML bytes p50 | HTML bytes max "
        "| client p95 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, title in ROWS:
        s = r[key]
        lines.append(
            f"| {title.format(n=r['reviewers'])} | {s['n']} | {s['p50']:.1f} | {s['p95']:.1f} "
            f"| {s['p99']:.1f} | {s['max']:.1f} | {s['size_p50']:,} | {s['size_max']:,} "
            f"| {s['client_p95']:.1f} |"
        )
    return "\n".join(lines)


def verdict(results: list[dict]) -> str:
    def side(ms: float) -> str:
        return "within" if ms <= BAR_MS else "above"

    parts = []
    for r in results:
        page, seq, conc = (r[k]["p95"] for k in ("page", "seq", "conc"))
        parts.append(
            f"on {r['backend']} the p95 is {page:.1f} ms for the full page and {seq:.1f} ms for "
            f"a decision with its swap ({side(max(page, seq))} the {BAR_MS:.0f} ms bar with one "
            f"reviewer at a time), {conc:.1f} ms for a decision with {r['reviewers']} reviewers "
            f"at once ({side(conc)} it)"
        )
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def _routed(r: dict) -> str:
    total = sum(r["routed"].values()) or 1
    mix = ", ".join(
        f"{k.replace('_', '-')} {100 * n / total:.0f}%" for k, n in sorted(r["routed"].items())
    )
    return (
        f"{r['backend']}: {r['ingested']:,} items ingested in {r['ingest_s']:.0f}s "
        f"({mix}); {r['scored']:,} of the queue's {r['items']:,} items scored by "
        f"its model {r['model']}; {r['pending_before']:,} pending when the measurements "
        f"started, {r['pending_after']:,} after the last decision"
    )


def _pg_note(r: dict) -> str:
    if r["analyzed"]:
        how = (
            "the script runs `VACUUM ANALYZE` between the ingest and the measurements, as "
            "autovacuum would after an insert this size"
        )
    else:
        how = "measured without `VACUUM ANALYZE` after the ingest (`--no-analyze`)"
    return f"PostgreSQL statistics: autovacuum is {r['autovacuum']} on this server; {how}.\n"


def git_state() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "app", "templates", "migrations"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}" + (" with uncommitted changes in app/templates/migrations" if dirty else "")


def section(results: list[dict], info: dict, args) -> str:
    versions = {r["backend"]: r["version"] for r in results}
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        START,
        "## Review page",
        "",
        "Quality bar: *a review page renders in under 30 ms on the server at p95 with 100,000 "
        "items waiting; the HTML swapped per item stays small.*",
        "",
        "`bench/review_page.py`: the demo queue (`app.demo.seed.seed_demo`: queue `claims` with "
        '`display={"fields": FIELDS}`, 600 claims labelled through the ordinary claim/decide '
        "path and a model trained on them), then generated claims pushed *without predictions* "
        f"to `POST /api/v1/queues/claims/items` as the `producer` user (NDJSON, batches of "
        f"{args.batch:,}), so the queue's model scores and routes every one, until at least "
        f"{args.waiting:,} items are still pending after the last measured decision. "
        f"{args.reviewers} reviewers, members of the queue, log in through the /login form "
        "(CSRF token from the form, `session` cookie carried by hand over `http.client`, one "
        "keep-alive connection each) against `create_app()` served by werkzeug's threaded "
        "server in the same process, the heap settled (`settle_heap`) as the server does. "
        "Times are server-side: a WSGI middleware takes `time.perf_counter` around the app call "
        "and the iteration of the response body. After one unrecorded page per reviewer, three "
        "series are measured: the full page `GET /queues/claims/review` reloaded, each time "
        "after `POST /me/leave` (what the browser's `sendBeacon` sends on leaving a page: the "
        "held item stays the reviewer's for a short grace), so the page takes the held item up "
        "again and renders it; "
        "the htmx decision `POST /queues/claims/claims/<token>/decide` (`HX-Request: true`, "
        "`X-CSRFToken` from the body's `hx-headers`, label = the first `button.candidate`), "
        "which stores the decision, hands the training example to Redis and claims and renders "
        "the next item as the swapped `#review-item` fragment, with the reviewers taking turns; "
        "and the same decisions with every reviewer in its own thread at once. HTML bytes are "
        "the uncompressed response bodies; client p95 is the round trip seen by the client "
        "(same process, so it shares the GIL with the server). No RQ worker runs, so no "
        "retraining happens during the run.",
        "",
        f"- Date: {when}; commit {info['commit']}",
        f"- Machine: {info['platform']}; {info['cpu']}; {info['cores']} cores; "
        f"{info['memory']} RAM; load average {info['load']} before the run, "
        f"{info['load_after']} after it",
        f"- Python {info['python']}; SQLite {info['sqlite']}"
        + (f"; PostgreSQL {versions['postgresql']}" if "postgresql" in versions else ""),
        f"- Code: {git_state()}",
        "",
    ]
    for r in results:
        name = "SQLite" if r["backend"] == "sqlite" else "PostgreSQL"
        out += [f"### {name} {r['version']}", "", table(r), ""]
    out += [
        "Items: " + "; ".join(_routed(r) for r in results) + ".",
        "",
        *(_pg_note(r) for r in results if r["backend"] == "postgresql"),
        "Against the bar: " + verdict(results),
        END,
    ]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--waiting", type=int, default=100_000, help="pending items to keep")
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--reviewers", type=int, default=4)
    ap.add_argument("--decisions", type=int, default=500, help="per series (seq and conc)")
    ap.add_argument("--pages", type=int, default=200, help="full pages measured")
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--profile", action="store_true", help="always profile 50 decisions")
    ap.add_argument("--no-auto-profile", action="store_true", help="never profile")
    ap.add_argument("--profile-requests", type=int, default=50)
    ap.add_argument("--top", type=int, default=30, help="profile rows to print")
    ap.add_argument("--profile-out", default=None, help="also dump pstats to FILE.<backend>.prof")
    ap.add_argument(
        "--no-analyze",
        action="store_true",
        help="PostgreSQL: measure without the VACUUM ANALYZE after the ingest",
    )
    ap.add_argument("--no-docs", action="store_true", help="print only; leave docs/ alone")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))

    info = machine_info()  # before the run, so the load average is the machine's, not ours
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = []
    for backend in backends:
        results.append(run_backend(backend, args))
        r = results[-1]
        print(f"\n{backend} {r['version']}\n{table(r)}\n{_routed(r)}", flush=True)

    for r in results:
        if "profile" in r:
            if args.profile_out:
                r["profile"].dump_stats(f"{args.profile_out}.{r['backend']}.prof")
            for key in ("tottime", "cumulative"):
                out = io.StringIO()
                r["profile"].stream = out
                r["profile"].sort_stats(key).print_stats(args.top)
                print(
                    f"\n=== {r['backend']}: {r['profile_n']} htmx decisions, server-side "
                    f"profile by {key} ===\n{out.getvalue()}"
                )
    info["load_after"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print("\n" + verdict(results))
    if not args.no_docs:
        write_docs(section(results, info, args), START, END)
        print(f"\nwrote {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
