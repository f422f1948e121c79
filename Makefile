# Two commands on a fresh machine: `make up` (run the example stack) and `make test`.
# Both bootstrap .venv first; re-running is cheap because the install is stamped.

PYTHON ?= python3
# The integration suite runs once per target; one this machine cannot run (no Docker engine) is skipped, with the reason.
TARGETS ?= inprocess,local,docker
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: up down test bench conformance lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

up: $(STAMP)  ## run every service under services/ on 127.0.0.1 with live reload
	$(BIN)/devenv up

down: $(STAMP)
	$(BIN)/devenv down

test: $(STAMP)  ## the whole suite: unit, integration (in-process and local), SDK interop, conformance
	$(BIN)/pytest --devenv-target=$(TARGETS) $(PYTEST_ARGS)

bench: $(STAMP)  ## benchmark suite; `make bench BENCH_ARGS=--quick` for the smoke run
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check devenv services tests benchmarks

clean:
	rm -rf $(VENV) .devenv .cache .pytest_cache
