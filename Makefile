# Two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench migrations clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)  ## set up and serve on the embedded default (SQLite, in-memory broker)
	$(BIN)/agentplane serve

test: $(STAMP)  ## set up and run the tests (PostgreSQL + Redis when AGENTPLANE_* URLs are set)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src

bench: $(STAMP)  ## figures as ratios to baselines measured in the same run (see README: Performance)
	$(BIN)/python bench/fanout.py

migrations: $(STAMP)  ## write a migration for model changes (checked in under src/agentplane/migrations)
	$(BIN)/tortoise makemigrations

clean:
	rm -rf $(VENV) agentplane.db agentplane.db-shm agentplane.db-wal
