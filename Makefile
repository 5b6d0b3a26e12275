# The two commands: `make run` and `make test`. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export SITE_URL ?= http://127.0.0.1:$(PORT)
export DJANGO_SETTINGS_MODULE ?= config.settings.dev

.PHONY: install install-dev run test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	PORT=$(PORT) BIN=$(BIN) scripts/run.sh

test: install-dev
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python manage.py makemigrations --check --dry-run

format: install-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install-dev
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python -m bench.login && \
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python -m bench.reset && \
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/python -m bench.appointments

clean:
	rm -rf $(VENV) var/static

# The suite against a local PostgreSQL cluster kept in $(PG_DIR) (created on
# first use, see scripts/postgres-local.sh); it is stopped afterwards unless it
# was already running.
PG_DIR ?= var/pg
PG_PORT ?= 54329
.PHONY: test-postgres
test-postgres: install-dev
	@if scripts/postgres-local.sh status $(PG_DIR); then keep=1; else keep=0; fi; \
	url=$$(scripts/postgres-local.sh start $(PG_DIR) $(PG_PORT)) || exit 1; \
	[ $$keep = 1 ] || trap 'scripts/postgres-local.sh stop $(PG_DIR)' EXIT; \
	echo "DATABASE_URL=$$url"; \
	DATABASE_URL=$$url DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/pytest $(PYTEST_ARGS)

# Mes paiements at national scale (bench/payments_scale.py): 1,000,000 members and
# 20,000,000 lines on its own PostgreSQL cluster under var/bench-scale, deleted
# afterwards. Takes 30 to 60 minutes, hence not in `make bench`; a quick run:
# make bench-payments-scale BENCH_ARGS="--small-members 1000 --large-members 10000"
.PHONY: bench-payments-scale
bench-payments-scale: install-dev
	$(BIN)/python -m bench.payments_scale $(BENCH_ARGS)

# The production topology on this machine: PostgreSQL and Redis (Debian's
# packages, installed if missing) under var/prod-local/, gunicorn with several
# workers, two task workers and the scheduler. See scripts/prod-local.sh.
.PHONY: prod-local
prod-local: install
	PORT=$(PORT) BIN=$(BIN) scripts/prod-local.sh
