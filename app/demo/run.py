"""`loupe demo`: schema, demo data, embedded Redis, a worker process and the web app."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys

import click

from app import create_app, resolve_redis_url, settle_heap
from app.cli import upgrade_database
from app.db import get_engine
from app.demo.seed import QUEUE, seed_demo
from app.settings import Settings


def run_demo(*, host: str, port: int, workers: int) -> None:
    settings = Settings()
    upgrade_database(settings.resolved_database_url())
    # Start (or join) Redis here and hand its address to the worker processes.
    os.environ["REDIS_URL"] = resolve_redis_url(settings)
    login = seed_demo(get_engine(settings.resolved_database_url()))

    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--name", f"demo-{os.getpid()}-{n}"]
        )
        for n in range(workers)
    ]

    def stop_workers():
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()

    atexit.register(stop_workers)
    # SIGTERM would skip atexit: turn it into a normal exit so the workers stop too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from werkzeug.serving import make_server

    app = create_app(Settings())
    # Listening before the banner says so: a client started on the banner finds the server.
    server = make_server(host, port, app, threaded=True)
    url = f"http://{host}:{port}"
    click.echo("")
    click.echo("=" * 64)
    click.echo(f"  Loupe demo is running at {url}")
    click.echo(f"  Log in as   {login.reviewer} / {login.password}")
    click.echo(f"  Review the '{QUEUE}' queue: {url}/queues/{QUEUE}/review")
    click.echo(f"  Its models and their cards: {url}/queues/{QUEUE}/models")
    click.echo("  (a new version is trained after every 25 of your labels)")
    if login.token:
        click.echo(f"  API token for user '{login.producer}': {login.token}")
    else:
        click.echo("  API token: run `loupe token create --user producer`")
    click.echo(f"  Redis: {os.environ['REDIS_URL']}  Database: {settings.resolved_database_url()}")
    click.echo("  Stop with Ctrl-C.")
    click.echo("=" * 64)
    settle_heap()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
