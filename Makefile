# One machine, two commands: `make run` (live dashboard on SQLite, no Redis) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

# `make run` defaults; each can be overridden from the environment (docs/configuration.md).
DJANGO_SECRET_KEY_FILE ?= $(CURDIR)/var/secret_key
DJANGO_ALLOWED_HOSTS ?= localhost,127.0.0.1
ENABLE_AUTO_THREAT_GENERATION ?= true
THREAT_GENERATION_INTERVAL ?= 10
RUN_ENV = DJANGO_SECRET_KEY_FILE=$(DJANGO_SECRET_KEY_FILE) DJANGO_ALLOWED_HOSTS=$(DJANGO_ALLOWED_HOSTS) \
	ENABLE_AUTO_THREAT_GENERATION=$(ENABLE_AUTO_THREAT_GENERATION) THREAT_GENERATION_INTERVAL=$(THREAT_GENERATION_INTERVAL)

.PHONY: run test test-fast test-integration latency bench eval load cluster clean

$(VENV)/.python-ok:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@touch $@

$(VENV)/.runtime: requirements.txt $(VENV)/.python-ok
	@echo "Installing runtime requirements..."
	$(BIN)/pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	@echo "Installing test requirements..."
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

var/secret_key:
	@mkdir -p var
	@$(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))' > $@
	@chmod 600 $@

# seed_demo refuses its published login with DJANGO_DEBUG=false unless told: this is a demo, on purpose.
run: $(VENV)/.runtime var/secret_key
	$(RUN_ENV) $(BIN)/python manage.py migrate --noinput
	$(RUN_ENV) $(BIN)/python manage.py seed_demo --insecure-demo-login
	$(RUN_ENV) $(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@echo ""
	@echo "  SOC Agent System: http://localhost:$(PORT)/   (log in as analyst / analyst)"
	@echo "  Admin: http://localhost:$(PORT)/admin/   API docs: http://localhost:$(PORT)/api/docs"
	@echo "  A new synthetic threat every $(THREAT_GENERATION_INTERVAL) s. Stop with Ctrl-C."
	@echo ""
	$(RUN_ENV) exec $(BIN)/daphne -b $(HOST) -p $(PORT) socproject.asgi:application

test: $(VENV)/.dev
	$(BIN)/python -m pytest

test-fast: $(VENV)/.dev
	$(BIN)/python -m pytest -m "not integration"

test-integration: $(VENV)/.dev
	$(BIN)/python -m pytest -m integration

latency: $(VENV)/.dev
	$(BIN)/python bench/trigger_latency.py --runs 50

# The cluster topology on this machine: Redis, 3 Daphne pods, Celery worker + beat, nginx on
# CLUSTER_PORT (docs/cluster.md). Needs redis-server and nginx (Debian packages).
CLUSTER_PORT ?= 8080
cluster: $(VENV)/.dev
	@command -v redis-server >/dev/null || { echo "make cluster needs redis-server: apt-get install redis-server"; exit 1; }
	@command -v nginx >/dev/null || { echo "make cluster needs nginx: apt-get install nginx"; exit 1; }
	$(BIN)/python -m tests.integration.cluster --pods 3 --port $(CLUSTER_PORT)

# Every benchmark (docs/performance.md, docs/benchmarks.md): bench/run_all.py runs each bench/*.py script
# (each appends a JSON line to bench/results/) and writes docs/benchmarks.md from this run's lines.
# Needs wrk, redis-server and nginx (Debian packages); PostgreSQL on 127.0.0.1:5432 for the scale runs
# (else SQLite). BENCH_ARGS=--quick: a smoke run of a few seconds per script (CI).
BENCH_ARGS ?=
# PEER_URL: a running instance of the original system, measured alternately with this one (bench_http).
PEER_URL ?=
bench: $(VENV)/.dev
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk"; exit 1; }
	PEER_URL=$(PEER_URL) $(BIN)/python bench/run_all.py $(BENCH_ARGS)

# The labelled corpus (eval/corpus, eval/README.md) through ingestion, triage and the agents in a
# throwaway database: prints the scores and writes docs/evaluation.md. DATABASE_URL picks the backend.
# EVAL_ARGS: --only FOLDER, --case NAME, --output PATH, --check (exit 1 when a target is missed).
EVAL_ARGS ?=
eval: $(VENV)/.runtime var/secret_key
	DJANGO_SECRET_KEY_FILE=$(DJANGO_SECRET_KEY_FILE) DJANGO_ALLOWED_HOSTS=$(DJANGO_ALLOWED_HOSTS) \
		ENABLE_AUTO_THREAT_GENERATION=false $(BIN)/python manage.py evaluate $(EVAL_ARGS)

# Locust (tests/load/locustfile.py) headless against the cluster harness: analysts (login, dashboard,
# list, details, triage, WebSocket), ingest clients in every format, a burst shape. HTML and CSV
# report in var/load/. LOAD_USERS analysts before the burst (x4 during it), LOAD_SECONDS in all.
LOAD_USERS ?= 20
LOAD_SECONDS ?= 60
load: $(VENV)/.dev
	@command -v redis-server >/dev/null || { echo "make load needs redis-server: apt-get install redis-server"; exit 1; }
	@command -v nginx >/dev/null || { echo "make load needs nginx: apt-get install nginx"; exit 1; }
	$(BIN)/python -m tests.load.run --users $(LOAD_USERS) --seconds $(LOAD_SECONDS)

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache
