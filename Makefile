# Two commands set up and run everything: `make demo` and `make test`.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: install demo test test-fast bench lint format clean

install: ## create .venv from uv.lock (bootstraps uv if missing)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --python 3.11

demo: install ## run the whole pipeline end to end on embedded defaults
	.venv/bin/python -m flows.demo

test: install ## run the whole test suite
	.venv/bin/python -m pytest

test-fast: install
	.venv/bin/python -m pytest -m "not slow"

bench: install ## run every benchmark, write benchmarks/results/*.json, refresh the README table
	.venv/bin/python -m benchmarks.run_all

lint: install
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

format: install
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

clean:
	rm -rf data/raw data/truth data/features data/validated data/*.db mlruns mlruns.db optuna.db reports .prefect
