"""`loupe demo`: schema, demo data, embedded Redis, a worker process and the web app."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys

import click
from werkzeug.serving import WSGIRequestHandler, make_server

from app import create_app, resolve_redis_url, settle_heap
from app.db import get_engine, upgrade_database
from app.demo.seed import QUEUE, seed_demo
from app.settings import current_settings

# What each role may do, in the banner's words (see PERMISSIONS in app/auth/service.py).
ROLE_CAN = {
    "reviewer": "reviews",
    "lead": "reviews, retrains, promotes",
    "scientist": "sends items, exports, retrains",
    "admin": "everything",
}


def _role(role: str) -> str:
    can = ROLE_CAN.get(role)
    return f"role: {role} — {can}" if can else f"role: {role}"


class QuietRequestHandler(WSGIRequestHandler):
    """Logs errors but not every request: the demo's terminal is for its banner and for
    what went wrong (`loupe demo --log-requests` brings the request lines back)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def run_demo(*, host: str, port: int, workers: int, log_requests: bool = False) -> None:
    # SIGTERM and a closed terminal's SIGHUP would skip atexit: make them a normal exit, so
    # the workers and the embedded Redis stop and Redis's files go, as after Ctrl-C.
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda *_: sys.exit(0))
    settings = current_settings()
    upgrade_database(settings.resolved_database_url())
    # Start (or join) Redis here and hand its address to the worker processes.
    settings.redis_url = os.environ["REDIS_URL"] = resolve_redis_url(settings)
    login = seed_demo(get_engine(settings.resolved_database_url()))

    # The workers start with Ctrl-C ignored: one pressed while they still import would end
    # them with a KeyboardInterrupt traceback. Once working, RQ's own handler takes Ctrl-C as
    # a warm shut down, and this process stops them with SIGTERM in any case.
    interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        procs = [
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "app.cli", "worker"),
                    *("--name", f"demo-{os.getpid()}-{n}"),
                    # The worker's INFO lines (every job, every maintenance tick) would
                    # scroll the login off the screen; --log-requests shows them too.
                    *("--log-level", "INFO" if log_requests else "WARNING"),
                ]
            )
            for n in range(workers)
        ]
    finally:
        signal.signal(signal.SIGINT, interrupt)

    def stop_workers():
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    atexit.register(stop_workers)
    app = create_app(settings)
    # Listening before the banner says so: a client started on the banner finds the server.
    server = make_server(
        host,
        port,
        app,
        threaded=True,
        request_handler=None if log_requests else QuietRequestHandler,
    )
    url = f"http://{host}:{port}"
    click.echo("")
    click.echo("=" * 64)
    click.echo(f"  Loupe demo is running at {url}")
    click.echo(
        f"  Log in as   {login.reviewer} / {login.password}   ({_role(login.reviewer_role)})"
    )
    click.echo(f"  Review the '{QUEUE}' queue: {url}/queues/{QUEUE}/review")
    click.echo(f"  Its models and their cards: {url}/queues/{QUEUE}/models")
    click.echo("  (a new version is trained after every 25 of your labels)")
    click.echo(f"  What waits for a lead: {url}/queues/{QUEUE}/desk")
    click.echo(f"  API token for {login.producer} ({_role(login.producer_role)}):")
    click.echo(f"    {login.token}   (a new one on every start)")
    click.echo(f"  Redis: {os.environ['REDIS_URL']}  Database: {settings.resolved_database_url()}")
    if not log_requests:
        click.echo("  Request logs are off (`loupe demo --log-requests` shows them).")
    click.echo("  Stop with Ctrl-C.")
    click.echo("=" * 64)
    settle_heap()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
