# Production image for Loupe; the same image runs web, worker and migrate.

# Stage 1: the wheel, which carries the templates, the migrations and their Alembic
# configuration inside the package (see setup.py).
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY app ./app
COPY workers ./workers
COPY templates ./templates
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheel .

# Stage 2: the wheel installed like any package, with the dependency versions CI tested
# (constraints.txt) and without the `embedded` extra: production sets REDIS_URL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOUPE_ENV=production

# libpq5 keeps psycopg working even if the non-binary variant gets installed.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system loupe \
    && useradd --system --gid loupe --home-dir /srv/loupe --shell /usr/sbin/nologin loupe

COPY constraints.txt /tmp/constraints.txt
COPY --from=wheel /wheel /tmp/wheel
RUN pip install -c /tmp/constraints.txt /tmp/wheel/*.whl && rm -rf /tmp/wheel /tmp/constraints.txt

# The working folder holds only the gunicorn settings: no source tree for `app` to be
# imported from instead of the installed package.
WORKDIR /srv/loupe
COPY gunicorn.conf.py ./

USER loupe

EXPOSE 8000

# slim has no curl; the stdlib is enough. Only meaningful for the web process,
# so compose disables it for worker and migrate.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

CMD ["gunicorn", "--config", "gunicorn.conf.py", "app:create_app()"]
