# belief-web: `make run` serves the demo; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
ARGS ?=

.PHONY: run test stack bench deps lint messages clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q ".[dev]"
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

deps: $(VENV)/.installed node_modules/.installed

run: deps
	DEBUG=1 $(PY) manage.py migrate --no-input -v0
	DEBUG=1 $(PY) manage.py load_demo --base-url http://127.0.0.1:$(PORT)
	DEBUG=1 $(PY) manage.py runserver 127.0.0.1:$(PORT)

test: deps
	$(PY) tests/run.py $(ARGS)

# Outside `make run` (DEBUG=1) the settings refuse to start without a SECRET_KEY: unless one is
# given, a random one is generated once into .secret_key (git-ignored, mode 600).
KEY_FILE := $(CURDIR)/.secret_key
WITH_KEY = if [ -z "$$SECRET_KEY" ] && [ -z "$$SECRET_KEY_FILE" ]; then export SECRET_KEY_FILE=$(KEY_FILE); fi;

$(KEY_FILE):
	@umask 077; $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(64))" > $@

# Web + worker + beat against DATABASE_URL and REDIS_URL (see Procfile).
stack: deps $(KEY_FILE)
	@test -n "$$DATABASE_URL" && test -n "$$REDIS_URL" || { echo "set DATABASE_URL and REDIS_URL"; exit 2; }
	$(WITH_KEY) $(PY) manage.py migrate --no-input
	$(WITH_KEY) $(PY) manage.py collectstatic --no-input -v0
	$(WITH_KEY) PATH=$(VENV)/bin:$$PATH $(VENV)/bin/honcho start

bench: deps $(KEY_FILE)
	@$(WITH_KEY) for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

messages: deps
	$(PY) manage.py makemessages -l fr -l en --ignore=node_modules --ignore=.venv
	$(PY) manage.py compilemessages --ignore=node_modules --ignore=.venv

clean:
	rm -rf $(VENV) node_modules staticfiles db.sqlite3 test-db.sqlite3
