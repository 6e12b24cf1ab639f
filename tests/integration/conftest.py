"""Integration-only fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import service_processes


@pytest.fixture
def two_replicas(
    app: object, service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """Base URLs of two more service processes sharing the test database, Redis and MinIO.

    Depends on ``app`` so the test database exists (and is migrated) before they start. One
    pair per test: every replica runs a reconciler, and one left running would finish outbox
    work that a later test holds back on purpose (e.g. with the in-process store patched).
    """
    env = {**service_env, "LOG_LEVEL": "INFO"}
    with service_processes(env, tmp_path_factory.mktemp("replicas"), 2) as urls:
        yield urls
