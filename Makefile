# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two installs: what the service needs (make run), and that plus the development extras
# (tests, lint, bench). The dev install covers the runtime one, so it stamps both.
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# The suite mostly waits (servers starting, providers answering, outages passing), so it
# runs in 4 processes even on 2 cores; TEST_PROCESSES=0 runs it in this one.
TEST_PROCESSES ?= 4
PYTEST := $(BIN)/pytest -n $(TEST_PROCESSES)

.PHONY: install install-runtime run test test-unit test-integration test-e2e lint format bench clean

$(RUNTIME_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $(RUNTIME_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUNTIME_STAMP)

install-runtime: $(RUNTIME_STAMP)

install: $(STAMP)  ## the development install: runtime and dev extras

run: install-runtime  ## migrate the embedded SQLite store and serve the API on $(HOST):$(PORT)
	$(BIN)/conversa migrate
	$(BIN)/conversa serve --host $(HOST) --port $(PORT)

test: install  ## the whole suite, against real PostgreSQL, SQLite and Redis, and a real browser
	scripts/ensure-postgres
	scripts/ensure-redis
	scripts/ensure-chromium
	$(PYTEST)

test-unit: install
	$(PYTEST) tests/unit

test-integration: install
	scripts/ensure-postgres
	$(PYTEST) tests/integration

test-e2e: install
	scripts/ensure-postgres
	scripts/ensure-redis
	scripts/ensure-chromium
	$(PYTEST) tests/e2e

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install  ## Conversa against a CRUD baseline in the same run (bench/README.md); ARGS=--quick
	scripts/ensure-postgres
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis *.egg-info
