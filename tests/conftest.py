"""Shared fixtures: the real stack, the KBase stand-in, and the service in-process.

Integration tests use a database of their own (``mms_test_<pid>``, dropped at the end) and
Redis database 15, and give every user and group a random name, so runs never collide with
``make dev`` data or with each other.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from tests.support.kbase import KBase, TestUser
from tests.support.parts import module_of, parse_part, split
from tests.support.stack import drop_database, recreate_database, stack_env, store_kind

TEST_DB = f"mms_test_{os.getpid()}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ``MMS_TEST_PART=i/n``, only the modules of part i (tests/support/parts.py).
    Against an AWS-IAM-API store (``make test-seaweedfs``), tests about a MinIO-only detail
    are skipped, each with the reason its ``minio_only`` mark gives."""
    if os.environ.get("MMS_TEST_PART"):
        part, count = parse_part(os.environ["MMS_TEST_PART"])
        mine = split((i.nodeid for i in items), count)[part - 1]
        kept = [i for i in items if module_of(i.nodeid) in mine]
        config.hook.pytest_deselected(items=[i for i in items if module_of(i.nodeid) not in mine])
        items[:] = kept
    if store_kind() == "minio":
        return
    for item in items:
        mark = item.get_closest_marker("minio_only")
        if mark is not None:
            reason = mark.kwargs.get("reason") or (mark.args[0] if mark.args else "")
            item.add_marker(pytest.mark.skip(reason=f"MinIO only: {reason}"))


TEST_REDIS_DB = int(os.environ.get("MMS_TEST_REDIS_DB", "15"))
"""Redis database of the run; `make test-seaweedfs` gives each of its parts one of its own."""


@pytest.fixture(scope="session")
def stack() -> dict[str, str]:
    env = stack_env()
    os.environ.update(env)
    return env


@pytest.fixture(scope="session")
def kbase() -> Iterator[KBase]:
    stub = KBase()
    yield stub
    stub.close()


@pytest.fixture(scope="session")
def service_env(stack: dict[str, str], kbase: KBase) -> dict[str, str]:
    """Environment of the service under test (also used to start extra processes)."""
    redis_url = stack["REDIS_URL"].rsplit("/", 1)[0] + f"/{TEST_REDIS_DB}"
    env = {
        **stack,
        "MMS_DB_NAME": TEST_DB,
        "REDIS_URL": redis_url,
        "KBASE_AUTH_URL": kbase.url,
        "LOG_LEVEL": "DEBUG",
    }
    return env


@pytest_asyncio.fixture(scope="session")
async def app(stack: dict[str, str], service_env: dict[str, str]) -> AsyncIterator[object]:
    from minio_manager.config import get_settings
    from minio_manager.main import create_app

    await recreate_database(stack, TEST_DB)
    os.environ.update(service_env)
    get_settings.cache_clear()
    application = create_app()
    try:
        async with application.router.lifespan_context(application):
            yield application
    finally:
        await drop_database(stack, TEST_DB)


@pytest_asyncio.fixture(scope="session")
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport, base_url="http://service", timeout=120
    ) as http:
        yield http


@pytest.fixture
def user(kbase: KBase) -> TestUser:
    return kbase.add_user()


@pytest.fixture
def admin(kbase: KBase) -> TestUser:
    return kbase.add_user(admin=True)


@pytest.fixture(scope="session")
def services(app: object) -> object:
    return app.state.services  # type: ignore[attr-defined]
