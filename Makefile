# Developer entry points. The local stack (PostgreSQL, Redis, MinIO) is managed by
# scripts/stack.sh; its state lives in .stack/.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

# `uv` if it is on PATH; otherwise the copy `pip install uv` puts next to python3.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV

SRC_DIRS := src tests bench scripts clients/python/src e2e

.PHONY: install stack dev test e2e lint fmt bench down

install:
	@if ! command -v uv >/dev/null 2>&1 && ! python3 -m uv --version >/dev/null 2>&1; then \
		echo "installing uv with pip"; \
		python3 -m pip install --quiet uv || python3 -m pip install --quiet --break-system-packages uv; \
	fi
	$(UV) sync --locked

stack:
	scripts/stack.sh up

# API on http://127.0.0.1:8000/docs with the stack and the KBase auth stand-in; see scripts/dev.sh.
dev: install
	scripts/dev.sh

# Every test, against the real stack. pytest's exit status is passed through as is
# (5 = no tests collected is a failure).
test: install stack
	eval "$$(scripts/stack.sh env)" && $(UV) run pytest -q

# JupyterHub + configurable-http-proxy + the spawn hook, and Spark on s3a, with the real programs
# (e2e/). First run installs them into ~/.cache/mms/e2e (scripts/e2e_tools.sh); later runs reuse it.
e2e: install stack
	scripts/e2e_tools.sh all
	eval "$$(scripts/stack.sh env)" && $(UV) run pytest e2e -q -s -p no:cacheprovider

lint: install
	$(UV) run ruff check $(SRC_DIRS) && $(UV) run ruff format --check $(SRC_DIRS) && $(UV) run mypy

fmt: install
	$(UV) run ruff check --fix $(SRC_DIRS)
	$(UV) run ruff format $(SRC_DIRS)

bench: install stack
	eval "$$(scripts/stack.sh env)" && for b in credentials tenants sharing; do \
		echo "== bench/$$b.py"; $(UV) run python bench/$$b.py; done

down:
	scripts/stack.sh down
