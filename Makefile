# Developer entry points. The local stack (PostgreSQL, Redis, MinIO) is managed by
# scripts/stack.sh; its state lives in .stack/.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

# `uv` if it is on PATH; otherwise the copy `pip install uv` puts next to python3.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV

SRC_DIRS := src tests bench scripts clients/python/src e2e

.PHONY: install stack dev test test-seaweedfs test-faults fuzz e2e lint fmt bench bench-scale chaos chaos-short down check-chart

install:
	@if ! command -v uv >/dev/null 2>&1 && ! python3 -m uv --version >/dev/null 2>&1; then \
		echo "installing uv with pip"; \
		python3 -m pip install --quiet uv || python3 -m pip install --quiet --break-system-packages uv; \
	fi
	# Bytecode compiled at install, as in the image (UV_COMPILE_BYTECODE): with
	# PYTHONDONTWRITEBYTECODE set, every start would compile ~1 000 modules from source, which
	# costs seconds and leaves ~5-7 MiB more RSS (docs/decisions.md, "Memory: the baseline").
	$(UV) sync --locked --compile-bytecode

stack:
	scripts/stack.sh up

# API on http://127.0.0.1:8000/docs with the stack and the KBase auth stand-in; see scripts/dev.sh.
dev: install
	scripts/dev.sh

# Every test, against the real stack. pytest's exit status is passed through as is
# (5 = no tests collected is a failure).
test: install stack
	eval "$$(scripts/stack.sh env)" && $(UV) run pytest -q

# The same suite against SeaweedFS (AWS IAM API): every test but those marked minio_only (each
# mark says why), in SEAWEEDFS_PARTS parts side by side (default 2), each on a fresh SeaweedFS of
# its own (scripts/test_seaweedfs.sh). SeaweedFS' user and group writes slow down with the square
# of its IAM store (docs/backends.md, "SeaweedFS: IAM writes slow down…"), so on it every
# integration test removes what it created. PYTEST_ARGS are passed to every part.
SEAWEEDFS_PARTS ?= 2
test-seaweedfs: install stack
	SEAWEEDFS_PARTS=$(SEAWEEDFS_PARTS) scripts/test_seaweedfs.sh $(PYTEST_ARGS)

# JupyterHub + configurable-http-proxy + the spawn hook, and Spark on s3a, with the real programs
# (e2e/). First run installs them into ~/.cache/mms/e2e (scripts/e2e_tools.sh); later runs reuse it.
e2e: install stack
	scripts/e2e_tools.sh all
	eval "$$(scripts/stack.sh env)" && $(UV) run pytest e2e -q -s -p no:cacheprovider
# schemathesis (--checks all) over every operation, as an admin and as a user, against a service
# of its own (database mms_fuzz, Redis db 14) on the real stack; see scripts/fuzz.py.
# FUZZ_EXAMPLES (per operation) and FUZZ_SEED may be set.
fuzz: install stack
	eval "$$(scripts/stack.sh env)" && $(UV) run python scripts/fuzz.py
# Only the kill -9 tests (also part of `make test`): MinIO, PostgreSQL and Redis SIGKILLed with
# changes in flight (tests/integration/test_kill9.py), on private dependencies of their own.
# Needs root (PostgreSQL runs as the `postgres` user) and the cached MinIO build.
test-faults: install stack
	eval "$$(scripts/stack.sh env)" && $(UV) run pytest -q -m faults tests/integration/test_kill9.py

lint: install
	$(UV) run ruff check $(SRC_DIRS) && $(UV) run ruff format --check $(SRC_DIRS) && $(UV) run mypy

fmt: install
	$(UV) run ruff check --fix $(SRC_DIRS)
	$(UV) run ruff format $(SRC_DIRS)

bench: install stack
	eval "$$(scripts/stack.sh env)" && for b in credentials tenants sharing ceiling storm; do \
		echo "== bench/$$b.py"; $(UV) run python bench/$$b.py; done

# Scale benchmark (bench/scale.py) on a private stack: 50 users per step by first login, the
# rest and the tenants seeded in bulk (bench/scale_seed.py: import-iam + COPY), share records by
# COPY, then figures per size. SCALE_USERS sets the sizes (default 1000,10000; each step adds to
# the last); SCALE_STACK_DIR=/dev/shm keeps the private stack in memory (see docs/benchmarks.md).
SCALE_USERS ?= 1000,10000
bench-scale: install stack
	SCALE_USERS=$(SCALE_USERS) $(UV) run python bench/scale.py

# Chaos benchmark (bench/chaos.py): three replicas behind nginx, 64 clients, each dependency and
# one replica SIGKILLed and restarted in turn on a private stack. CHAOS_SECONDS sets the length.
CHAOS_SECONDS ?= 600
chaos: install stack
	CHAOS_SECONDS=$(CHAOS_SECONDS) $(UV) run python bench/chaos.py

chaos-short: install stack
	CHAOS_SECONDS=120 $(UV) run python bench/chaos.py

down:
	scripts/stack.sh down

# Helm chart: lint, render (default and production-like values), schema-validate offline.
check-chart: install
	scripts/check_chart.sh
