# Liaison: every target sets up what it needs, from a fresh clone.
#
#   make test    venv + packages + Kafka jars, then ruff, mypy --strict and the whole pytest suite
#   make demo    (arrives with the admin API; until then it says so)
#   make broker  a local secured broker in the foreground (Ctrl-C stops it)

SHELL      := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.installed

.PHONY: test lint typecheck unit integration demo broker tools jars clean

test: $(STAMP) jars lint typecheck
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP) jars
	$(BIN)/pytest tests/integration tests/e2e

# Java 17+ and Maven run the broker and fetch its jars. Install them if missing and we can.
tools:
	@bash scripts/ensure-tools.sh

jars: $(STAMP) tools
	$(BIN)/liaison broker fetch

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) else f"Python >= 3.11 needed, found {v.major}.{v.minor}: set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

demo:
	@echo "The demo arrives with the admin API (issue 8). Until then: 'make broker' runs a secured broker."
	@exit 1

broker: $(STAMP) jars
	$(BIN)/liaison broker start

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .liaison
