# Production image for Loupe; the same image runs web, worker and migrate.
FROM python:3.11-slim

# PYTHONPATH makes imports resolve to /app rather than site-packages, so the
# top-level templates/, migrations/ and alembic.ini sit where the code expects them.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    LOUPE_ENV=production

# libpq5 keeps psycopg working even if the non-binary variant gets installed.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system loupe && useradd --system --gid loupe --home-dir /app --shell /usr/sbin/nologin loupe

WORKDIR /app

COPY pyproject.toml README.md ./
COPY app ./app
COPY workers ./workers
COPY templates ./templates
COPY migrations ./migrations
COPY alembic.ini gunicorn.conf.py ./

# Installs the dependencies and the `loupe` console script.
RUN pip install . && chown -R loupe:loupe /app

USER loupe

EXPOSE 8000

# slim has no curl; the stdlib is enough. Only meaningful for the web process,
# so compose disables it for worker and migrate.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

CMD ["gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"]
