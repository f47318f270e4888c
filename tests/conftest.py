"""Fixtures: a real database (SQLite or PostgreSQL), a real Redis, real RQ workers.

By default the suite runs on a SQLite file and an embedded Redis. With
TEST_DATABASE_URL and TEST_REDIS_URL set it runs on those instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="loupe-tests-"))
DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{_TMP / 'loupe.db'}"
os.environ.update(
    DATABASE_URL=DATABASE_URL,
    LOUPE_INSTANCE=str(_TMP),
    LOUPE_ENV="test",
    SECRET_KEY="test-secret",
    LOUPE_MAINTENANCE_INTERVAL="1",
)
if os.environ.get("TEST_REDIS_URL"):
    os.environ["REDIS_URL"] = os.environ["TEST_REDIS_URL"]
else:
    from app.embedded_redis import embedded_redis_url

    os.environ["REDIS_URL"] = embedded_redis_url(_TMP / "redis.rdb")

from redis import Redis  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402

from app import create_app  # noqa: E402
from app.auth.service import add_membership, create_token, create_user  # noqa: E402
from app.db import (  # noqa: E402
    get_engine,
    new_session,
    session_scope,
    upgrade_database,  # noqa: E402
)
from app.learning.job_queues import ALL_QUEUES  # noqa: E402
from app.queues.service import create_queue  # noqa: E402
from app.settings import Settings  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def engine():
    eng = get_engine(Settings().resolved_database_url())
    if eng.dialect.name == "postgresql":
        with eng.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    # The schema comes from the migrations, so they are tested on every run.
    upgrade_database(DATABASE_URL)
    return eng


def _clean(engine) -> None:
    from sqlalchemy.exc import OperationalError

    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    for attempt in range(5):
        try:
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
                else:
                    for table in tables:
                        conn.execute(text(f"DELETE FROM {table}"))
            return
        except OperationalError:
            # A worker process of the previous test may still be finishing a job.
            if attempt == 4:
                raise
            time.sleep(0.2)


@pytest.fixture
def redis():
    conn = Redis.from_url(os.environ["REDIS_URL"])
    conn.flushdb()
    yield conn
    conn.flushdb()


@pytest.fixture
def app(engine, redis):
    _clean(engine)
    # Per-process caches keyed by ids, which restart at 1 after the clean-up.
    from app.learning import explain, scoring
    from app.queues import service as queues

    explain._similar_cache.clear()
    scoring._cache.clear()
    queues._recent_counts.clear()
    application = create_app(Settings())
    application.config.update(TESTING=True)
    yield application


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def session(app, engine):
    s = new_session(engine, write=True)
    yield s
    s.rollback()
    s.close()


class Reader:
    """Reads in a short transaction of its own, so tests never hold SQLite's lock."""

    def __init__(self, engine):
        self.engine = engine

    def scalar(self, stmt):
        with new_session(self.engine) as s:
            return s.scalar(stmt)

    def all(self, stmt):
        with new_session(self.engine) as s:
            return s.execute(stmt).all()

    def count(self, model, *where):
        from sqlalchemy import func, select

        return self.scalar(select(func.count()).select_from(model).where(*where))


@pytest.fixture
def db(app, engine):
    return Reader(engine)


class Factory:
    """Small factories for users, tokens and queues, committed so HTTP calls see them."""

    def __init__(self, engine):
        self.engine = engine
        self.n = 0

    def user(self, role="reviewer", queues=(), password="pw-123456", name=None):
        self.n += 1
        name = name or f"{role}{self.n}"
        with session_scope(self.engine) as s:
            u = create_user(session=s, name=name, role=role, password=password)
            for q in queues:
                from app.queues.service import get_queue

                add_membership(session=s, user=u, queue=get_queue(session=s, name=q))
            tok = create_token(session=s, user=u)
        return {
            "name": name,
            "token": tok,
            "headers": {"Authorization": f"Bearer {tok}"},
            "id": u.id,
            "password": password,
        }

    def queue(self, name="claims", labels=("legit", "fraud", "duplicate"), **policy):
        with session_scope(self.engine) as s:
            q = create_queue(
                session=s,
                data={"name": name, "labels": list(labels) if labels else None, "policy": policy},
            )
            return q.id


@pytest.fixture
def make(app, engine):
    return Factory(engine)


def item(external_id, label="fraud", score=0.6, payload=None, **extra):
    """One API item whose top candidate is `label` with `score`."""
    others = [lab for lab in ("legit", "fraud", "duplicate") if lab != label]
    rest = round((1 - score) / 2, 4)
    return {
        "external_id": external_id,
        "payload": payload if payload is not None else {"amount": 120.5, "country": "FR"},
        "prediction": {
            "model_version": "producer-1",
            "candidates": [
                {"label": label, "score": score},
                {"label": others[0], "score": rest},
                {"label": others[1], "score": rest},
            ],
        },
        **extra,
    }


@pytest.fixture
def run_jobs(redis):
    """Runs every queued RQ job in this process with a real SimpleWorker, in burst mode."""
    from rq import SimpleWorker

    def run():
        worker = SimpleWorker(list(ALL_QUEUES), connection=redis)
        worker.work(burst=True)
        return worker

    return run


@pytest.fixture
def live_server(app):
    """The app on a real threaded HTTP server on a free loopback port.

    On teardown it waits for requests still running (a browser closing sends a last release
    beacon), so the next test's clean-up never races a request of this one.
    """
    from werkzeug.serving import make_server

    active = [0]
    lock = threading.Lock()

    def counted(environ, start_response):
        with lock:
            active[0] += 1
        try:
            yield from app(environ, start_response)
        finally:
            with lock:
                active[0] -= 1

    server = make_server("127.0.0.1", 0, counted, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
    deadline = time.monotonic() + 10
    while active[0] and time.monotonic() < deadline:
        time.sleep(0.02)


WORKER_LOG_TAIL = 60  # lines of a worker's output shown when its test fails


@pytest.fixture
def worker_process(app, request, tmp_path):
    """A real `loupe worker` process, stopped (and reaped) after the test.

    Its output goes to a file in the test's tmp_path (a pipe nobody reads would block the
    worker once full); when the test fails, the report ends with the file's last lines.
    """
    procs = []
    request.node.worker_logs = []

    def start():
        path = tmp_path / f"worker-{len(procs) + 1}.log"
        with path.open("wb") as log:  # the child has its own copy of the descriptor
            p = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker"],
                cwd=PROJECT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        procs.append(p)
        request.node.worker_logs.append(path)
        return p

    yield start
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that ran worker processes shows the end of their output."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for path in getattr(item, "worker_logs", []):
            lines = path.read_text(errors="replace").splitlines()[-WORKER_LOG_TAIL:]
            report.sections.append(
                (f"loupe worker output, last {len(lines)} lines of {path}", "\n".join(lines))
            )


def wait_for(predicate, timeout=30.0, interval=0.1, what="condition"):
    """Polls until predicate() is truthy; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- Real-browser fixtures (tests/browser): Debian's headless Chromium driven by Playwright.

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT / "tests" / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (Playwright cannot download its own here)."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def artifacts():
    """The folder for screenshots (ignored by git)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def page_for(browser, live_server):
    """page_for(user) -> a Playwright page in a browser context of its own, logged in as
    `user` (a `make.user(...)` dict) through the real /login form of `live_server`.

    Every page gets `page.js_errors`, the uncaught JavaScript errors it saw.
    """
    contexts = []

    def open_page(user, path=None, viewport=None):
        context = browser.new_context(
            base_url=live_server, viewport=viewport or {"width": 1280, "height": 900}
        )
        context.set_default_timeout(5_000)
        contexts.append(context)
        page = context.new_page()
        page.js_errors = []
        page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
        page.goto("/login")
        page.fill("input[name=name]", user["name"])
        page.fill("input[name=password]", user["password"])
        with page.expect_navigation():
            page.click("form button[type=submit]")
        if "/login" in page.url:
            raise AssertionError(f"login as {user['name']} failed: {page.text_content('main')}")
        if path:
            page.goto(path)
        return page

    yield open_page
    for context in contexts:
        context.close()
