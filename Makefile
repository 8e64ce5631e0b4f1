# Peregrine: the two commands are `make demo` (the main job) and `make test` (the whole suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-unit stack-up stack-down stack-status install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## The main job: local stack up, a worker, a demo attack, alerts read back from OpenSearch.
demo: $(STAMP)
	$(BIN)/peregrine demo

## The whole suite: unit tests, then integration tests on the real stack (started once).
test: $(STAMP)
	$(BIN)/python -m pytest

## Unit tests only: no servers, seconds.
test-unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration"

stack-up: $(STAMP)
	$(BIN)/peregrine stack up
stack-down: $(STAMP)
	$(BIN)/peregrine stack down
stack-status: $(STAMP)
	$(BIN)/peregrine stack status

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
