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

# Installs come from the locks: every package, dependencies included, pinned
# with its hashes (--require-hashes). requirements*.txt say what we ask for;
# `make lock` turns them into requirements*.lock (README.md, "Dependencies").
$(VENV)/.installed: requirements.lock requirements.txt $(BIN)/python
	@$(LOCK_CHECK) requirements.lock requirements.txt
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	touch $@

$(VENV)/.installed-dev: requirements-dev.lock requirements-dev.txt requirements.txt $(VENV)/.installed
	@$(LOCK_CHECK) requirements-dev.lock requirements.txt requirements-dev.txt
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	touch $@

# Fails, naming them, when requirements of requirements*.txt are not pinned
# with == or not in the lock at that version: a change without `make lock`.
define LOCK_CHECK_PY
import re, sys
pin = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^]]*\])? *== *([^ ;\\#]+)")
def norm(m):
    return re.sub(r"[-_.]+", "-", m[1]).lower() + "==" + m[3]
lock_name, *wanted = sys.argv[1:]
locked = {norm(m) for line in open(lock_name) if (m := pin.match(line))}
problems = []
for name in wanted:
    for line in open(name):
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        m = pin.fullmatch(line)
        if m is None:
            problems.append(f"{line} (in {name}) is not pinned with ==")
        elif norm(m) not in locked:
            problems.append(f"{line} (in {name}) is not in {lock_name}")
if problems:
    sys.exit("\n".join(problems) + "\nRun `make lock` (README.md, Dependencies).")
endef
export LOCK_CHECK_PY
LOCK_CHECK = $(PYTHON) -c "$$LOCK_CHECK_PY"

# The locks, for every supported Python (3.11 and later, as environment markers),
# regenerated with uv from requirements*.txt. The versions already locked are kept
# unless asked: `make lock LOCK_ARGS=--upgrade` (everything) or
# `make lock LOCK_ARGS="--upgrade-package django"`. The dev lock is constrained by
# the runtime one, so that both install the same runtime versions.
LOCK_COMPILE = UV_PYTHON_DOWNLOADS=never $(BIN)/uv pip compile --quiet --universal \
	--python-version 3.11 --generate-hashes --custom-compile-command "make lock" $(LOCK_ARGS)
.PHONY: lock
lock: $(BIN)/python
	$(BIN)/pip install --quiet "$$(grep -E '^uv==' requirements-dev.txt)"
	$(LOCK_COMPILE) requirements.txt -o requirements.lock
	$(LOCK_COMPILE) requirements-dev.txt -c requirements.lock -o requirements-dev.lock

# Known vulnerabilities in the locked dependencies (pip-audit, against PyPI's
# data; PIP_AUDIT_VULNERABILITY_SERVICE=osv for OSV's). --strict: a package it
# cannot audit fails too. .ci/run first checks that the data is reachable.
.PHONY: audit
audit: install-dev
	$(BIN)/pip-audit --progress-spinner off --strict --disable-pip \
		-r requirements.lock -r requirements-dev.lock

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

# Load and faults against the production topology (loadtest/, docs/performance.md):
# scripts/prod-local.sh under var/loadtest/ on free ports, with a real SMTP server
# and an SMS gateway of ours as sinks; everything started is stopped at the end.
# `make loadtest` waits (up to 20 min) for a load average under 2, then runs 200
# users for 2 minutes; to develop:
# make loadtest LOADTEST_ARGS="--users 20 --duration 20 --wait-idle 0 --no-record"
# make faults FAULTS_ARGS="--only smtp,redis --no-record"
# Locust (and its gevent) only for these two targets, pinned, kept out of the
# suite's locked tools so that `make test` and CI do not install it.
LOCUST = locust==2.47.0
LOCUST_INSTALL = $(BIN)/python -c "import locust" 2>/dev/null || $(BIN)/pip install --quiet "$(LOCUST)"
.PHONY: loadtest faults
loadtest: install-dev
	@$(LOCUST_INSTALL)
	$(BIN)/python -m loadtest.run $(LOADTEST_ARGS)

faults: install-dev
	@$(LOCUST_INSTALL)
	$(BIN)/python -m loadtest.faults $(FAULTS_ARGS)
