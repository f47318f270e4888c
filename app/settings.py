"""Loupe's settings, read once from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
# The checkout: in an installed wheel this is site-packages, so nothing is looked up here alone.
PROJECT_ROOT = PACKAGE_DIR.parent


def _carried(folder: str) -> Path:
    """templates/ or migrations/: inside the package when installed from a wheel (setup.py
    moves them there), beside it in a checkout (editable installs included)."""
    inside = PACKAGE_DIR / folder
    return inside if inside.is_dir() else PROJECT_ROOT / folder


TEMPLATES_DIR = _carried("templates")
MIGRATIONS_DIR = _carried("migrations")
# The Alembic configuration `loupe db upgrade` runs with (the checkout's top-level alembic.ini
# is for the `alembic` command there).
ALEMBIC_INI = MIGRATIONS_DIR / "alembic.ini"


class Settings(BaseSettings):
    """Every knob Loupe reads from the environment (no prefix for the documented three)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    database_url: str | None = None
    redis_url: str | None = None
    secret_key: str | None = None
    # development, demo, test or production: only the first three may run without SECRET_KEY.
    loupe_env: str = "development"
    # ./instance of the folder Loupe runs in: an installed package has no checkout to sit in.
    instance_path: Path = Field(
        default_factory=lambda: Path.cwd() / "instance", alias="LOUPE_INSTANCE"
    )
    max_body_bytes: int = Field(default=32 * 1024 * 1024, alias="LOUPE_MAX_BODY_BYTES")
    max_batch_items: int = Field(default=50_000, alias="LOUPE_MAX_BATCH_ITEMS")
    maintenance_interval: float = Field(default=5.0, alias="LOUPE_MAINTENANCE_INTERVAL")
    # The alarm checks of every queue run at most this often, whichever worker runs them.
    alarm_check_interval: float = Field(default=60.0, ge=0, alias="LOUPE_ALARM_CHECK_INTERVAL")
    scoring_budget_seconds: float = Field(default=2.0, alias="LOUPE_SCORING_BUDGET")
    # How many proxies in front of Loupe set X-Forwarded-For and -Proto (1 behind the compose
    # file's TLS proxy); 0 trusts no such header, as a server reached directly must.
    proxy_hops: int = Field(default=0, ge=0, alias="LOUPE_PROXY_HOPS")
    # A retraining run's lock outlives a killed worker by at most this long.
    retrain_lock_seconds: int = Field(default=60, ge=3, alias="LOUPE_RETRAIN_LOCK_SECONDS")
    # An outbox row whose job failed (or was lost) this many times is parked, not re-sent.
    outbox_max_attempts: int = Field(default=5, ge=1, alias="LOUPE_OUTBOX_MAX_ATTEMPTS")

    def resolved_database_url(self) -> str:
        """The configured database, or a SQLite file in the instance folder."""
        if self.database_url:
            url = self.database_url
            # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
            if url.startswith("postgres://"):
                url = "postgresql://" + url[len("postgres://") :]
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            return url
        self.instance_path.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.instance_path / 'loupe.db'}"

    def require_secret(self) -> str:
        """The secret key; only development, demo and test may fall back to a fixed one."""
        if self.secret_key:
            return self.secret_key
        if self.loupe_env in {"development", "demo", "test"}:
            return "loupe-development-only-secret"
        raise RuntimeError(
            f"SECRET_KEY is not set and LOUPE_ENV={self.loupe_env!r}: refusing to start. "
            "Set SECRET_KEY to a long random string."
        )


_current: Settings | None = None


def use_settings(settings: Settings) -> Settings:
    """Makes these the settings of this process: create_app and the worker call it once, and
    forked work-horses inherit them."""
    global _current
    _current = settings
    return settings


def current_settings() -> Settings:
    """The settings of this process: those its entry point chose, else read once from the
    environment (a CLI command, a script)."""
    return _current if _current is not None else use_settings(Settings())
