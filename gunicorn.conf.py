"""gunicorn settings for `gunicorn app:create_app()` (see docker-compose.yml)."""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "4"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 120
accesslog = "-"


def post_worker_init(worker):
    from app import settle_heap

    settle_heap()
