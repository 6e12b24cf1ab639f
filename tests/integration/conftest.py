"""Integration-only fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from minio_manager.objectstore.awsclients import AwsClients
from minio_manager.objectstore.port import ObjectStore
from tests.support.processes import service_processes
from tests.support.stack import store_kind
from tests.support.store import open_store
from tests.support.store_cleanup import admin_clients, forget, remove_created_since, snapshot


@pytest_asyncio.fixture(scope="session")
async def _cleanup_store(
    stack: dict[str, str],
) -> AsyncIterator[tuple[ObjectStore, AwsClients] | None]:
    """The admin clients of an AWS-IAM-API store for the whole run (a new aiobotocore client
    per snapshot cost 0.15-0.4 s, three times per test); None on MinIO."""
    if store_kind(stack) == "minio":
        yield None
        return
    store, clients = open_store(stack), admin_clients(stack)
    try:
        yield store, clients
    finally:
        await store.close()
        await clients.close()


@pytest_asyncio.fixture(autouse=True)
async def _small_aws_iam_store(
    stack: dict[str, str],
    service_env: dict[str, str],
    _cleanup_store: tuple[ObjectStore, AwsClients] | None,
) -> AsyncIterator[None]:
    """On an AWS-IAM-API store, remove the users, groups and policies each test created.

    SeaweedFS' user and group writes slow down with the square of the store's size
    (tests/support/store_cleanup.py); per module was not enough (50 users within one module:
    a login took 9.5 s). Being function-scoped, this runs after any module-scoped fixture has
    set up, so what those create is in the snapshot and kept. MinIO needs no such care.
    """
    if _cleanup_store is None:
        yield
        return
    store, clients = _cleanup_store
    before = await snapshot(store)
    yield
    removed = await remove_created_since(store, clients, before)
    await forget(stack, service_env["MMS_DB_NAME"], removed)


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
