"""`loupe worker`: an RQ worker that also runs Loupe's periodic maintenance."""

from __future__ import annotations

import logging
import time

from redis import Redis
from rq import Worker

from app import resolve_redis_url, settle_heap
from app.learning.job_queues import ALL_QUEUES
from app.settings import current_settings
from workers.maintenance import run_maintenance

log = logging.getLogger(__name__)


class LoupeWorker(Worker):
    """Wakes at least every maintenance interval to relay the outbox and expire leases."""

    loupe_interval: float = 5.0
    _loupe_last: float = 0.0

    @property
    def dequeue_timeout(self) -> int:
        return max(1, int(self.loupe_interval))

    @property
    def should_run_maintenance_tasks(self) -> bool:
        return time.monotonic() - self._loupe_last >= self.loupe_interval

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        self._loupe_last = time.monotonic()
        try:
            done = run_maintenance()
            if done["relayed"] or done["expired"] or done["alarms"]:
                log.info("maintenance: %s", done)
        except Exception:  # noqa: BLE001 - Redis or the database away: try again next tick
            log.warning("maintenance failed; will retry", exc_info=True)


def preload() -> None:
    """Imports scikit-learn once in the parent so forked work-horses start fast (the job
    modules imported above do too; this says it, and serves bench/retrain.py)."""
    import sklearn.linear_model  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import skops.io  # noqa: F401


def run_worker(*, burst: bool = False, name: str | None = None, log_level: str = "INFO") -> bool:
    """Runs the worker; its forked work-horses read the settings built here
    (current_settings). `log_level` WARNING keeps a demo terminal to what matters."""
    settings = current_settings()
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    preload()
    conn = Redis.from_url(resolve_redis_url(settings))
    LoupeWorker.loupe_interval = settings.maintenance_interval
    worker = LoupeWorker(list(ALL_QUEUES), connection=conn, name=name)
    settle_heap()  # also keeps forked work-horses from copying pages the collector touches
    return worker.work(burst=burst, logging_level=log_level)
