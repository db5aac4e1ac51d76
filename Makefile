# Liaison: every target sets up what it needs, from a fresh clone.
#
#   make test    venv + packages + Kafka jars, then ruff, mypy --strict and the whole pytest suite
#   make demo    venv + packages + Kafka jars, then a broker, the edge router, the admin API
#                and three fictional agencies exchanging bulletins (Ctrl-C stops it all)
#   make broker  a local secured broker in the foreground (Ctrl-C stops it)
#   make policy-proof  the policy engine's proofs at 10,000 hypothesis examples
#   make bench   the benchmark: the router against plain-Kafka baselines, latency, scaling,
#                memory and a profile, in one run (benchmarks/results/<date>.md)
#   make chaos   fault injection at full size: SIGKILLed routers and broker, a zombie router,
#                fuzzed records; prints a verdict table, fails on any violation (docs/chaos.md)

SHELL      := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.installed

.PHONY: test lint typecheck unit integration policy-proof bench chaos demo screenshots broker tools jars clean

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
	$(BIN)/pytest tests/integration tests/e2e tests/chaos

# The policy engine's property, canary and differential tests at 10,000 examples each
# (the default suite runs them at 100).
policy-proof: $(STAMP)
	HYPOTHESIS_PROFILE=proof $(BIN)/pytest -p no:cacheprovider --timeout=0 \
		tests/unit/test_policy_properties.py tests/unit/test_policy_canary.py \
		tests/unit/test_policy_differential.py

# Fault injection (issue 10) at full size on brokers of its own: 100,000 bulletins through 20
# router SIGKILLs at every step of a transaction, a SIGKILLed broker, zombie routers, 1,000
# fuzzed records. The suite runs small versions (tests/chaos); options: python -m tests.chaos -h
chaos: $(STAMP) jars
	$(BIN)/python -m tests.chaos

# The router against B0/B1/B2 baselines on one broker, interleaved rounds; writes
# benchmarks/results/<date>.json and .md and a profile. About 30 minutes on 2 cores (1,000,000
# bulletins for the memory trend); options: python benchmarks/run.py -h (--quick: minutes).
bench: $(STAMP) jars
	$(BIN)/python benchmarks/run.py

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

demo: $(STAMP) jars
	$(BIN)/liaison demo

# Re-take docs/dashboard.png with the dashboard test (headless Chromium, the live demo).
screenshots: $(STAMP) jars
	LIAISON_WRITE_SCREENSHOTS=1 $(BIN)/pytest -p no:cacheprovider tests/e2e/test_demo.py

broker: $(STAMP) jars
	$(BIN)/liaison broker start

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .liaison
