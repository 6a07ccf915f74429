# MQL Engine — developer entry points. Every target installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install system-deps demo test test-fast bench lint format typecheck clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	@touch $(STAMP)

# Debian packages the full test suite needs (PostgreSQL server, Chromium); idempotent.
system-deps:
	@bash scripts/system-deps.sh

demo: install
	$(BIN)/mql demo

test: install system-deps
	@bash scripts/run-tests.sh

test-fast: install
	$(BIN)/pytest -q -m "not slow and not postgres and not browser"

bench: install
	$(BIN)/python -m bench $(BENCH)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) build *.egg-info mql.db mql.db-wal mql.db-shm
