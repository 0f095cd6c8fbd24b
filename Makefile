# tradeops.algo: the two commands are `make demo` and `make test`.
# Both do every set-up step themselves on a fresh Debian 12 machine.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
BIN := $(VENV)/bin
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export TRADEOPS_AUDIT_DIR ?= $(CURDIR)/.audit
export PATH := $(CURDIR)/$(BIN):$(PATH)
COLLECTION_DIR := .collections/ansible_collections/tradeops/algo
PYTEST_ARGS ?=

.PHONY: help setup os-deps venv collection wheelhouse test lint ruff mypy ansible-lint \
	sanity static unit integration quickfix conformance molecule core-latest demo demo-stop bench build freeze \
	freeze-core clean changelog

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: os-deps venv collection wheelhouse ## All set-up: Debian packages, .venv, collection path, wheelhouse

os-deps:
	@scripts/os-deps.sh

venv: $(VENV)/.installed
$(VENV)/.installed: requirements/dev.txt pyproject.toml
	@scripts/venv.sh

collection:
	@scripts/collection-path.sh

wheelhouse: venv
	@scripts/wheelhouse.sh

# The static gates only read files: they run beside the unit tests, and the
# QuickFIX wheel (built once per machine) is built in the first free slot (two
# jobs, each one's output printed whole when it ends). The gates that start
# fleets, agents and venues run one after the other; the integration tests
# themselves run on two workers (see `integration`).
test: setup ## Every quality gate: ruff, pytest, FIX conformance, ansible-lint, ansible-test sanity, molecule, newest core
	@$(MAKE) --no-print-directory -j2 --output-sync=target unit static quickfix
	@$(MAKE) --no-print-directory integration conformance molecule core-latest
	@echo "make test: all gates passed"

static: lint ansible-lint sanity

lint: ruff mypy changelog

changelog: venv
	$(BIN)/antsibull-changelog lint

ruff: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

mypy: venv
	$(BIN)/mypy

# Two workers (pytest-xdist): the unit tests mostly wait
# (sockets, subprocesses, timers), so two cores run them in about half the time.
UNIT_WORKERS ?= 2
unit: venv
	$(BIN)/python -m pytest tests/unit -q -n $(UNIT_WORKERS) $(PYTEST_ARGS)

# Two workers, a test file at a time each (--dist loadfile: a module's shared
# fleet stays on one worker). Each worker places its fleets in its own share of
# the loopback blocks (tests/integration/conftest.py), so that one worker's
# fleet never takes the address of a host another worker's test stopped.
INTEGRATION_WORKERS ?= 2
integration: setup
	$(BIN)/python -m pytest tests/integration -q -n $(INTEGRATION_WORKERS) --dist loadfile $(PYTEST_ARGS)

quickfix: venv
	@scripts/quickfix-wheel.sh

conformance: quickfix ## FIX conformance: the simulator and the adapters against QuickFIX and its FIX44.xml
	$(BIN)/python -m pytest tests/conformance -q $(PYTEST_ARGS)

ansible-lint: venv collection
	$(BIN)/ansible-lint --strict

sanity: venv collection
	@scripts/sanity.sh

molecule: setup
	@scripts/molecule.sh

demo: setup ## Start the simulated exchange, deploy the reference strategy here, show what works
	@$(BIN)/python scripts/demo.py

demo-stop: ## Stop what the demo started
	@$(BIN)/python scripts/demo.py --stop

bench: setup ## Run the benchmarks; results in bench/results/*.json
	@scripts/bench.sh

build: venv collection ## Build the collection tarball into build/
	@mkdir -p build && $(BIN)/ansible-galaxy collection build --force --output-path build .

core-latest: setup ## Unit, fleet deploy and sanity again on the newest ansible-core (.venv-core)
	@scripts/core-latest.sh

freeze-core: ## Re-pin requirements/core-latest.txt from the current .venv-core
	@{ head -2 requirements/core-latest.txt; .venv-core/bin/pip freeze --exclude-editable | grep -viE '^(pip|tradeops)=='; } > requirements/core-latest.txt.new && mv requirements/core-latest.txt.new requirements/core-latest.txt

freeze: ## Re-pin requirements/dev.txt from the current .venv
	@{ head -2 requirements/dev.txt; $(BIN)/pip freeze --all --exclude-editable | grep -viE '^(pip|tradeops)=='; } > requirements/dev.txt.new && mv requirements/dev.txt.new requirements/dev.txt

clean: ## Remove build output (not .venv)
	rm -rf build .collections tests/output .pytest_cache .ruff_cache .mypy_cache
