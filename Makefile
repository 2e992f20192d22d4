# Two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Third-party MCP servers the tests run over stdio (pinned in mcp-servers/package-lock.json).
NODE_STAMP := mcp-servers/node_modules/.installed
# The dashboard's sources (its build is committed under src/agentplane/static/ui).
UI_STAMP := ui/node_modules/.installed

.PHONY: run test lint bench migrations clean ui chromium screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(NODE_STAMP): mcp-servers/package.json mcp-servers/package-lock.json
	cd mcp-servers && npm ci --quiet --no-audit --no-fund
	touch $(NODE_STAMP)

$(UI_STAMP): ui/package.json ui/package-lock.json
	cd ui && npm ci --quiet --no-audit --no-fund
	touch $(UI_STAMP)

ui: $(UI_STAMP)  ## rebuild the dashboard into src/agentplane/static/ui (commit the result)
	cd ui && npm run build

# The browser tests drive Debian's Chromium through Playwright's Python package (never
# `playwright install`): installed here when missing and running as root.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "test: installing chromium (Debian package)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || \
	      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; \
	  fi; \
	  command -v chromium >/dev/null 2>&1 || { echo "test: needs chromium (Debian/Ubuntu: apt-get install chromium)"; exit 1; }; }

screenshots: $(STAMP) chromium  ## the README's screenshots of the dashboard (docs/*.png)
	$(BIN)/python -m tests.support.screenshots

run: $(STAMP)  ## set up and serve on the embedded default (SQLite, in-memory broker)
	$(BIN)/agentplane serve

test: $(STAMP) $(NODE_STAMP) $(UI_STAMP) chromium  ## set up and run the tests (PostgreSQL + Redis when AGENTPLANE_* URLs are set)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src
	$(BIN)/lint-imports

migrations: $(STAMP)  ## write a migration for model changes (checked in under src/agentplane/migrations)
	$(BIN)/tortoise makemigrations

# PostGraphile 4 for figure 1's side-by-side (pinned in bench/postgraphile/package-lock.json).
GRAPHILE_STAMP := bench/postgraphile/node_modules/.installed
$(GRAPHILE_STAMP): bench/postgraphile/package.json bench/postgraphile/package-lock.json
	cd bench/postgraphile && npm ci --quiet --no-audit --no-fund
	touch $(GRAPHILE_STAMP)

BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/agentplane_bench
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/0
bench: $(STAMP)  ## figures with ratios to same-run baselines (needs wrk and PostgreSQL; empties BENCH_DATABASE_URL)
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "bench: installing wrk (Debian package)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null || \
	      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }; \
	  fi; \
	  command -v wrk >/dev/null 2>&1 || { echo "bench: needs wrk (Debian/Ubuntu: apt-get install wrk)"; exit 1; }; }
	@command -v npm >/dev/null 2>&1 && $(MAKE) --no-print-directory $(GRAPHILE_STAMP) || \
	  echo "bench: no npm; the PostGraphile side-by-side is skipped"
	BENCH_DATABASE_URL=$(BENCH_DATABASE_URL) BENCH_REDIS_URL=$(BENCH_REDIS_URL) \
	  $(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) mcp-servers/node_modules bench/postgraphile/node_modules ui/node_modules agentplane.db agentplane.db-shm agentplane.db-wal
