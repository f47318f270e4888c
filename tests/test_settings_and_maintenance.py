"""Settings refuse unsafe starts; maintenance returns abandoned items."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.ingest.service import ingest_items, parse_rows
from app.models import Item, User, utcnow
from app.queues.service import get_queue
from app.review.service import claim_next
from app.settings import Settings
from tests.conftest import PROJECT, item


def test_production_refuses_to_start_without_secret_key():
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        Settings(loupe_env="production", secret_key=None).require_secret()
    assert Settings(loupe_env="demo", secret_key=None).require_secret()
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env["LOUPE_ENV"] = "production"
    r = subprocess.run(
        [sys.executable, "-c", "from app import create_app; create_app()"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0 and "SECRET_KEY" in r.stderr


def test_postgres_urls_use_psycopg3():
    assert (
        Settings(database_url="postgresql://u@h/db").resolved_database_url()
        == "postgresql+psycopg://u@h/db"
    )


def test_maintenance_job_returns_expired_items(make, session, engine, redis):
    from workers.maintenance import run_maintenance

    make.queue(audit_rate=0)
    make.user("reviewer", queues=["claims"], name="rita")
    queue = get_queue(session=session, name="claims")
    ingest_items(session=session, queue=queue, items=parse_rows([item("lost")]))
    user = session.scalar(select(User).where(User.name == "rita"))
    claim_next(session=session, queue=queue, user=user, now=utcnow() - timedelta(hours=1))
    session.commit()
    assert run_maintenance()["expired"] == 1
    session.expire_all()
    assert session.scalar(select(Item.status)) == "pending"
    session.commit()


def test_embedded_redis_is_shared_between_processes(tmp_path):
    code = (
        "import sys; from pathlib import Path; from redis import Redis;"
        "from app.embedded_redis import embedded_redis_url;"
        "r = Redis.from_url(embedded_redis_url(Path(sys.argv[1])));"
        "r.incr('hits'); print(embedded_redis_url(Path(sys.argv[1])))"
    )
    from redis import Redis

    from app.embedded_redis import embedded_redis_url

    url = embedded_redis_url(tmp_path / "shared.rdb")
    r = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "shared.rdb")],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == url  # the child joined the running server
    assert Redis.from_url(url).get("hits") == b"1"
