# The README's commands. Each target sets itself up from nothing: venv, dependencies, Kafka, PostgreSQL.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test check stack-up stack-down bench

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "wcs-audit needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

## run: local Kafka + PostgreSQL, migrations, then the receiver (and projector) in the foreground
run: $(STAMP)
	$(BIN)/wcs-audit stack up
	$(BIN)/wcs-audit migrate
	$(BIN)/wcs-audit run

## test: the whole test suite against the real local Kafka and PostgreSQL
test: $(STAMP)
	$(BIN)/wcs-audit stack up
	$(BIN)/pytest

## check: formatting, lint and types
check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

stack-up: $(STAMP)
	$(BIN)/wcs-audit stack up

stack-down: $(STAMP)
	$(BIN)/wcs-audit stack down
