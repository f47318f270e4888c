"""The `loupe` command: database, users, tokens, serving, workers, demo, import, export."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from app.db import get_engine, new_session, session_scope, upgrade_database
from app.settings import current_settings


def _engine():
    return get_engine(current_settings().resolved_database_url())


def _fail(exc: Exception) -> None:
    from app.errors import LoupeError

    if isinstance(exc, LoupeError):
        click.echo(f"error: {exc.message}", err=True)
        for d in exc.details[:20]:
            where = f"row {d['index']}: " if "index" in d else ""
            click.echo(f"  {where}{d.get('field', '')}: {d.get('message', '')}", err=True)
        sys.exit(2)
    raise exc


@click.group()
def main() -> None:
    """Loupe: a human-in-the-loop review queue for machine-learning predictions."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema."""
    upgrade_database()
    click.echo("database is at the newest schema")


@main.group()
def user() -> None:
    """Users."""


@user.command("create")
@click.argument("name")
@click.option(
    "--role", required=True, type=click.Choice(["reviewer", "lead", "scientist", "admin"])
)
@click.option("--password", default=None, help="Prompted for when not given.")
@click.option("--queue", "queues", multiple=True, help="Add a membership; may repeat.")
def user_create(name: str, role: str, password: str | None, queues: tuple[str, ...]) -> None:
    """Create a user."""
    from app.auth.service import add_membership, create_user
    from app.queues.service import get_queue

    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with session_scope(_engine()) as s:
            u = create_user(session=s, name=name, role=role, password=password)
            for qname in queues:
                add_membership(session=s, user=u, queue=get_queue(session=s, name=qname))
    except Exception as exc:  # noqa: BLE001
        _fail(exc)
    click.echo(f"created {role} {name}")


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--user", "user_name", required=True)
def token_create(user_name: str) -> None:
    """Create an API token; it is printed once, on the last line."""
    from app.auth.service import create_token, get_user

    try:
        with session_scope(_engine()) as s:
            new = create_token(session=s, user=get_user(session=s, name=user_name))
    except Exception as exc:  # noqa: BLE001
        _fail(exc)
    click.echo(f"token for {user_name} (shown once, only its hash is stored):")
    click.echo(new)


@main.group()
def queue() -> None:
    """Queues."""


@queue.command("create")
@click.argument("name")
@click.option("--labels", default=None, help="Comma-separated; omit for free-form answers.")
@click.option("--description", default="")
@click.option("--member", "members", multiple=True, help="A user to add; may repeat.")
def queue_create(name: str, labels: str | None, description: str, members: tuple[str, ...]) -> None:
    """Create a queue."""
    from app.auth.service import add_membership, get_user
    from app.queues.service import create_queue

    data = {
        "name": name,
        "description": description,
        "labels": [lab.strip() for lab in labels.split(",")] if labels else None,
    }
    try:
        with session_scope(_engine()) as s:
            q = create_queue(session=s, data=data)
            for m in members:
                add_membership(session=s, user=get_user(session=s, name=m), queue=q)
    except Exception as exc:  # noqa: BLE001
        _fail(exc)
    click.echo(f"created queue {name}")


@main.command("serve")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
def serve(host: str, port: int) -> None:
    """The web app and API (development server; production runs gunicorn on create_app)."""
    from werkzeug.serving import run_simple

    from app import create_app, settle_heap

    upgrade_database()
    app = create_app()
    settle_heap()
    run_simple(host, port, app, threaded=True, use_reloader=False)


@main.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--name", default=None)
@click.option(
    "--log-level",
    default="INFO",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    help="WARNING hides the per-job and maintenance lines.",
)
def worker(burst: bool, name: str | None, log_level: str) -> None:
    """An RQ worker for Loupe's queues, with the periodic maintenance."""
    # Here, not at the top: it imports scikit-learn, which other commands need not wait for.
    from workers.worker import run_worker

    run_worker(burst=burst, name=name, log_level=log_level)


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--queue", "queue_name", required=True)
def import_items(file: Path, queue_name: str) -> None:
    """Import items from CSV, JSONL/NDJSON or JSON ({"items": [...]}); all or nothing."""
    from app.ingest.service import ingest_items, parse_csv, parse_json_batch, parse_ndjson
    from app.queues.service import get_queue

    raw = file.read_bytes()
    suffix = file.suffix.lower()
    try:
        if suffix == ".csv":
            items = parse_csv(raw.decode("utf-8-sig"))
        elif suffix == ".json":
            items = parse_json_batch(raw)
        else:
            items = parse_ndjson(raw)
        with session_scope(_engine()) as s:
            result = ingest_items(
                session=s, queue=get_queue(session=s, name=queue_name), items=items
            )
    except Exception as exc:  # noqa: BLE001
        _fail(exc)
    click.echo(
        f"received {result['received']}, created {result['created']}, "
        f"duplicates {result['duplicates']}, routed {result['routed']}"
    )


@main.command("export")
@click.option("--queue", "queue_name", required=True)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet"]), default="jsonl")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A file; standard output when omitted (not for parquet).",
)
@click.option("--since", default=None, help="ISO 8601 time; only labels decided since then.")
def export(queue_name: str, fmt: str, output: Path | None, since: str | None) -> None:
    """Stream the queue's final labels with provenance."""
    from app.exports.service import parse_since, stream_labels
    from app.models import id_of
    from app.queues.service import get_queue

    if fmt == "parquet" and output is None:
        raise click.UsageError("parquet needs --output FILE")
    try:
        with new_session(_engine()) as s:
            q = get_queue(session=s, name=queue_name)
            chunks = stream_labels(session=s, queue_id=id_of(q), fmt=fmt, since=parse_since(since))
            out = output.open("wb") if output else sys.stdout.buffer
            try:
                for chunk in chunks:
                    out.write(chunk)
            finally:
                if output:
                    out.close()
    except Exception as exc:  # noqa: BLE001
        _fail(exc)


@main.command("demo")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@click.option("--workers", default=1, type=int)
@click.option("--log-requests", is_flag=True, help="Log every request (off by default).")
def demo(host: str, port: int, workers: int, log_requests: bool) -> None:
    """Everything in one process tree: schema, demo data, embedded Redis, a worker, the app."""
    import signal

    os.environ.setdefault("LOUPE_ENV", "demo")
    try:
        from app.demo.run import run_demo

        run_demo(host=host, port=port, workers=workers, log_requests=log_requests)
    except KeyboardInterrupt:
        pass  # Ctrl-C while starting: stop as quietly as while serving
    finally:
        # The exit handlers stop the workers and Redis and remove Redis's files; a second
        # Ctrl-C or SIGTERM must not cut them short (the workers get it too, and stop at once).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


if __name__ == "__main__":
    main()
