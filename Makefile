# Steward: `make run` starts a demo installation, `make test` runs the whole suite.
# Both set up what they need first (.venv, npm assets, Chromium for the browser tests).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export STEWARD_DATA_DIR ?= $(CURDIR)/data
PYTEST_WORKERS ?= 3

.PHONY: run test setup assets browser lint format clean bench

run: setup
	$(BIN)/steward demo

test: setup browser lint
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile -p no:cacheprovider

setup: $(VENV)/.installed assets

# Benchmark of issue 6 against a real server (not part of `make test`): BENCH_AGENTS=10000 for more.
BENCH_AGENTS ?= 1000
BENCH_ARGS ?=  # e.g. --database postgres --redis --workers 2 (python -m bench.run --help)

bench: $(VENV)/.installed
	$(BIN)/python -m bench.run --agents $(BENCH_AGENTS) $(BENCH_ARGS)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

assets: node_modules/.installed $(VENV)/.installed
	$(BIN)/python scripts/vendor_assets.py

# Debian's Chromium for the browser tests, nginx for the replica tests.
browser:
	scripts/ensure-chromium.sh
	scripts/ensure-nginx.sh

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) node_modules src/steward/server/web/static/vendor
