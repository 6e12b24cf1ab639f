"""Fixtures of the end-to-end tests: the stack, the KBase stand-in, a service process, a hub.

The service runs as a real process (uvicorn) on a database of its own; JupyterHub and Spark
come from the cache ``scripts/e2e_tools.sh`` fills (``make e2e`` runs it first).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.kbase import KBase
from tests.support.processes import service_process
from tests.support.stack import drop_database, recreate_database, stack_env

from e2e.harness import REPO, Hub, missing_tools, running_hub

E2E_DB = f"mms_e2e_{os.getpid()}"
E2E_REDIS_DB = 13  # fuzz uses 14, the tests 15


@pytest.fixture(scope="session")
def workdir() -> Path:
    """Logs and hub state of this run, kept after it for a look (git-ignored)."""
    path = REPO / ".e2e-run"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def stack() -> dict[str, str]:
    missing = missing_tools()
    if missing:
        pytest.fail(f"run scripts/e2e_tools.sh first (or make e2e); missing: {missing}")
    env = stack_env()
    os.environ.update(env)
    return env


@pytest.fixture(scope="session")
def kbase() -> Iterator[KBase]:
    stub = KBase()
    yield stub
    stub.close()


@pytest.fixture(scope="session")
def service_url(stack: dict[str, str], kbase: KBase, workdir: Path) -> Iterator[str]:
    asyncio.run(recreate_database(stack, E2E_DB))
    env = {
        **stack,
        "MMS_DB_NAME": E2E_DB,
        "REDIS_URL": stack["REDIS_URL"].rsplit("/", 1)[0] + f"/{E2E_REDIS_DB}",
        "KBASE_AUTH_URL": kbase.url,
        "LOG_LEVEL": "DEBUG",
    }
    try:
        with service_process(env, workdir / "service.log") as url:
            yield url
    finally:
        asyncio.run(drop_database(stack, E2E_DB))


@pytest.fixture(scope="session")
def hub(service_url: str, stack: dict[str, str], kbase: KBase, workdir: Path) -> Iterator[Hub]:
    started = time.monotonic()
    env = {
        "MMS_E2E_SERVICE_URL": service_url,
        "MMS_E2E_S3_ENDPOINT": stack["MINIO_ENDPOINT"],
        "MMS_E2E_KBASE_URL": kbase.url,
    }
    hub_dir = workdir / "hub"
    hub_dir.mkdir()
    with running_hub(hub_dir, env) as running:
        print(f"\nJupyterHub ready in {time.monotonic() - started:.1f} s")
        yield running
