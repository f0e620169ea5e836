# syntax=docker/dockerfile:1
# The natsctl control plane: one image runs the web app (gunicorn, the default command), the Celery
# worker and beat, the metering collector, the fleet supervisor and the migrations, each by its command
# (helm/natsctl sets them; docs/DEPLOY.md). The broker nodes run the official `nats` image instead.
#
#   docker build -t natsctl:0.1.0 .
#   docker run -e DJANGO_SECRET_KEY=... -e SEED_ENCRYPTION_KEYS=... -e DATABASE_URL=... -e REDIS_URL=... natsctl:0.1.0
#   docker run ... natsctl:0.1.0 celery -A accounts_service worker --loglevel INFO
#   docker run ... natsctl:0.1.0 python manage.py migrate --noinput

ARG PYTHON_VERSION=3.11

# ------------------------------------------------------------------------------------------------
# builder: a virtualenv with natsctl's dependencies, and the collected static files
# ------------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler for any dependency that has no wheel for this platform; it stays in this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

# The runtime stage copies the virtualenv to the same path (a virtualenv is not relocatable).
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Dependencies first, so a code change reuses this layer. pyproject.toml lists no packages: `pip install`
# brings the dependencies (with the postgres extra: psycopg) and the code runs from /app beside manage.py.
COPY pyproject.toml README.md ./
RUN pip install --upgrade pip \
 && pip install '.[postgres]'

COPY . .
# whitenoise serves static files from $NATSCTL_VAR_DIR/static; collected here, read-only at run time.
# The secret key exists only for this command (settings would otherwise write one under var/).
RUN NATSCTL_VAR_DIR=/src/var DJANGO_SECRET_KEY=collectstatic-only \
    python manage.py collectstatic --noinput -v0 \
 && find /src -name '__pycache__' -prune -exec rm -rf {} + \
 && rm -rf /src/*.egg-info /src/build

# ------------------------------------------------------------------------------------------------
# runtime: slim, no compiler, non-root, read-only friendly (writes go to /tmp only)
# ------------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime

RUN groupadd --system --gid 10001 natsctl \
 && useradd --system --uid 10001 --gid natsctl --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin natsctl

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /src /app

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=accounts_service.settings \
    NATSCTL_VAR_DIR=/app/var

WORKDIR /app
USER 10001:10001
EXPOSE 8000

# Liveness of the web app (the default command). Kubernetes ignores this and uses the chart's probes;
# containers running another role (worker, beat, collector...) set NATSCTL_HEALTHCHECK_URL= (empty).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request as r; url = os.environ.get('NATSCTL_HEALTHCHECK_URL', 'http://127.0.0.1:8000/healthz'); url and r.urlopen(r.Request(url, headers={'Host': 'localhost'}), timeout=4); sys.exit(0)"]

CMD ["gunicorn", "accounts_service.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2", \
     "--access-logfile", "-", "--logger-class", "core.gunicorn_logging.RedactingLogger", "--worker-tmp-dir", "/dev/shm"]
