# Two commands set up and run everything: `make demo` and `make test`.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: install demo test test-fast bench browser wrk lint format clean

install: ## create .venv from uv.lock (bootstraps uv if missing)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --python 3.11

demo: install ## run the whole pipeline end to end on embedded defaults
	.venv/bin/python -m flows.demo

TEST_WORKERS ?= 2
test: install browser ## run the whole test suite (TEST_WORKERS=0: in one process)
	.venv/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile

test-fast: install
	.venv/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

bench: install wrk ## run every benchmark, write benchmarks/results/*.json, refresh the README table
	.venv/bin/python -m benchmarks.run_all

browser: ## headless Chromium for the drift-report rendering test (best effort: it skips without)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && \
	    apt-get install -y -qq chromium >/dev/null 2>&1; }; }; } || echo "chromium not installed: its test will skip"

wrk: ## the HTTP load generator bench_serving drives the API with (Debian/Ubuntu package)
	@command -v wrk >/dev/null 2>&1 || { if [ "$$(id -u)" = 0 ]; then apt-get install -y -qq wrk; \
	  else sudo apt-get install -y -qq wrk; fi; } || { apt-get update -qq && apt-get install -y -qq wrk; }

lint: install ## ruff (style) and import-linter (who may import whom: ../shared/ARCHITECTURE.md)
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports

format: install
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

clean:
	rm -rf data/raw data/truth data/features data/validated data/*.db mlruns mlruns.db optuna.db reports .prefect
