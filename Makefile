# edgefleet: every target sets up what it needs itself (venv, pip packages), idempotently.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# the stamp changes with pyproject.toml and constraints.txt, so editing dependencies reinstalls and nothing else does
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup demo test lint format bench schemas clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	# torch is pinned in pyproject.toml: the CPU build of 2.13.0 lies on this machine's disk
	$(BIN)/python -m pip install --quiet -e '.[all]' -c constraints.txt --config-settings editable_mode=compat
	@rm -f $(VENV)/.installed-*
	@touch $@

demo: setup
	$(BIN)/edgefleet demo $(DEMO_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy edgefleet train export edge_agent fleet_server devices tests benchmarks

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m benchmarks

schemas: setup
	$(BIN)/edgefleet schemas --out docs/schemas

clean:
	rm -rf $(VENV) .edgefleet .pytest_cache .mypy_cache .ruff_cache
