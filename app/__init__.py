"""Loupe: a human-in-the-loop review queue for machine-learning predictions."""

from __future__ import annotations

import gc
import logging

from flask import Flask
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.middleware.proxy_fix import ProxyFix

from app.db import get_engine
from app.embedded_redis import embedded_redis_url
from app.extensions import close_db_session, csrf, login_manager, openapi
from app.settings import TEMPLATES_DIR, Settings, current_settings, use_settings


def resolve_redis_url(settings: Settings) -> str:
    """REDIS_URL, or the embedded server's socket when none is given."""
    return settings.redis_url or embedded_redis_url(settings.instance_path / "redis.rdb")


def settle_heap() -> None:
    """Hides everything loaded at start-up from the garbage collector.

    Called once a server or worker process is ready: later collections then walk only the
    objects of the request at hand, not the hundreds of thousands that Flask, SQLAlchemy and
    scikit-learn leave in memory (bulk ingest ran about 40 % slower without it).
    """
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None) -> Flask:
    """The application factory: settings, extensions, blueprints, errors, CLI.

    The settings given (else the process's, see app.settings.current_settings) become the
    process's: jobs and domain code that run in it read the same ones.
    """
    settings = use_settings(settings or current_settings())
    app = Flask(
        __name__,
        template_folder=str(TEMPLATES_DIR),
        static_folder="static",
        instance_path=str(settings.instance_path),
    )
    app.config.update(
        SECRET_KEY=settings.require_secret(),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.loupe_env == "production",
        WTF_CSRF_TIME_LIMIT=None,
        LOUPE_SETTINGS=settings,
    )
    if settings.proxy_hops:
        # Behind a TLS-terminating proxy: the scheme and client address it saw are the real
        # ones, so url_for, redirects and request.is_secure (CSRF's referrer check) say https.
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    app.extensions["loupe.engine"] = get_engine(settings.resolved_database_url())
    # Fail fast: a decision is already stored when Redis is asked; the relay retries later.
    app.extensions["loupe.redis"] = Redis.from_url(
        resolve_redis_url(settings),
        socket_timeout=5,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 1),
    )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    csrf.init_app(app)
    app.teardown_appcontext(close_db_session)

    from app.admin.routes import bp as admin_bp
    from app.api.routes import bp as api_bp
    from app.auth.routes import bp as auth_bp
    from app.dashboard.routes import bp as dashboard_bp
    from app.desk.quality_pages import bp as desk_quality_bp
    from app.desk.routes import bp as desk_bp
    from app.learning.routes import bp as registry_bp
    from app.ops.routes import bp as ops_bp
    from app.policy.routes import bp as policy_bp
    from app.queues.routes import bp as queues_bp
    from app.review.routes import bp as review_bp
    from app.trust.routes import bp as trust_bp

    for bp in (
        auth_bp,
        queues_bp,
        review_bp,
        registry_bp,
        api_bp,
        ops_bp,
        admin_bp,
        trust_bp,
        desk_bp,
        policy_bp,
        dashboard_bp,
    ):
        app.register_blueprint(bp)
    app.register_blueprint(desk_quality_bp)
    openapi.register(app)

    from app.api.errors import register_error_handlers

    register_error_handlers(app)

    return app
