# edgefleet: every target sets up what it needs itself (venv, pip packages), idempotently.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# the stamp changes with pyproject.toml and constraints.txt, so editing dependencies reinstalls and nothing else does
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
DEMO_ARGS ?=
PYTEST_ARGS ?= --durations=25
# Debian packages the suite runs for real: Mosquitto (shared subscriptions), PostgreSQL (the second database),
# Chromium (the dashboard's browser tests) and qemu-user-static (the agent on ARM64)
DEBS := mosquitto postgresql chromium qemu-user-static iproute2

.PHONY: setup debs demo test lint format bench schemas clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	# torch is pinned in pyproject.toml: the CPU build of 2.13.0 lies on this machine's disk
	$(BIN)/python -m pip install --quiet -e '.[all]' -c constraints.txt --config-settings editable_mode=compat
	@rm -f $(VENV)/.installed-*
	@touch $@

# installs only what is missing (apt-get update only then); tests start their own brokers and clusters on free
# ports, so the services the packages start are stopped and disabled: port 1883 stays free for the embedded broker
debs:
	@missing=$$(for deb in $(DEBS); do dpkg -s $$deb 2>/dev/null | grep -q '^Status: install ok installed' || echo $$deb; done); \
	if [ -n "$$missing" ]; then \
		set -e; \
		apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		for service in $$missing; do \
			service $$service stop >/dev/null 2>&1 || true; \
			if [ -d /run/systemd/system ]; then systemctl disable --quiet $$service || true; fi; \
		done; \
	fi

demo: setup
	$(BIN)/edgefleet demo $(DEMO_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy edgefleet train export edge_agent fleet_server devices tests benchmarks

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# two workers: one runs the tests that mostly wait (the soak, the server's), the other every other test in order
# (tests/conftest.py)
test: lint debs
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m benchmarks

schemas: setup
	$(BIN)/edgefleet schemas --out docs/schemas

clean:
	rm -rf $(VENV) .edgefleet .pytest_cache .mypy_cache .ruff_cache
