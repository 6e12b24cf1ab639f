"""Dependencies going down: 503 in the envelope, never a wrong answer or half-written state.

A second app instance reaches PostgreSQL, Redis and MinIO through TCP proxies that a test can
cut (connections refused and pooled ones broken) and restore.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text

from minio_manager.config import Settings
from minio_manager.main import create_app
from tests.support.kbase import KBase, TestUser
from tests.support.proxy import TcpProxy
from tests.support.s3 import S3User
from tests.support.stack import store_var

BUCKET = "cdm-lake"


class Outage:
    def __init__(self, client: httpx.AsyncClient, app: Any, proxies: dict[str, TcpProxy]) -> None:
        self.client = client
        self.app = app
        self.proxies = proxies

    @property
    def services(self) -> Any:
        return self.app.state.services

    async def row_exists(self, user: str, real_services: Any) -> bool:
        async with real_services.engine.connect() as conn:
            found = await conn.execute(
                text("SELECT 1 FROM user_credentials WHERE username = :u"), {"u": user}
            )
            return found.first() is not None


@pytest_asyncio.fixture(scope="module")
async def outage(app: Any, service_env: dict[str, str]) -> AsyncIterator[Outage]:
    minio_host, minio_port = (
        store_var(service_env, "OBJECT_STORE_ENDPOINT").split("//")[1].split(":")
    )
    redis_hostport = service_env["REDIS_URL"].split("//")[1].split("/")[0]
    redis_host, redis_port = redis_hostport.split(":")
    proxies = {
        "minio": TcpProxy(minio_host, int(minio_port)),
        "postgres": TcpProxy(service_env["MMS_DB_HOST"], int(service_env["MMS_DB_PORT"])),
        "redis": TcpProxy(redis_host, int(redis_port)),
    }
    for proxy in proxies.values():
        await proxy.start()
    settings = Settings(
        object_store_endpoint=f"http://127.0.0.1:{proxies['minio'].port}",
        mms_db_port=proxies["postgres"].port,
        redis_url=f"redis://127.0.0.1:{proxies['redis'].port}/15",
        minio_timeout_seconds=5,
        credential_lock_wait_seconds=5,
    )
    proxied_app = create_app(settings)
    async with proxied_app.router.lifespan_context(proxied_app):
        transport = httpx.ASGITransport(app=proxied_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxied") as client:
            yield Outage(client, proxied_app, proxies)
    for proxy in proxies.values():
        await proxy.cut()


async def _get(outage: Outage, user: TestUser) -> httpx.Response:
    return await outage.client.get("/credentials/", headers=user.headers)


def _assert_503(response: httpx.Response, code: int) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert set(body) == {"error", "error_type", "message"}
    assert body["error"] == code


async def test_minio_down_new_user_gets_503_and_nothing_is_cached(
    outage: Outage, kbase: KBase, services: Any
) -> None:
    fresh = kbase.add_user()
    await outage.proxies["minio"].cut()
    try:
        _assert_503(await _get(outage, fresh), 20050)
        assert not await outage.row_exists(fresh.name, services)
    finally:
        await outage.proxies["minio"].restore()
    response = await _get(outage, fresh)
    assert response.status_code == 200
    body = response.json()
    assert S3User(body["access_key"], body["secret_key"]).can_put(
        BUCKET, f"users-general-warehouse/{fresh.name}/after-outage.txt"
    )


async def test_rotation_with_minio_down_is_503_and_the_cached_pair_still_works(
    outage: Outage, kbase: KBase
) -> None:
    """The store is asked first: when it is down nothing changes, so the cached pair (which
    the store still accepts) is served, never emptied and never stale."""
    grace = kbase.add_user()
    first = (await _get(outage, grace)).json()
    await outage.proxies["minio"].cut()
    try:
        _assert_503(await outage.client.post("/credentials/rotate", headers=grace.headers), 20050)
        during = await _get(outage, grace)
        assert during.status_code == 200
        assert during.json()["secret_key"] == first["secret_key"]
    finally:
        await outage.proxies["minio"].restore()
    after = (await _get(outage, grace)).json()
    assert after["secret_key"] == first["secret_key"]
    s3 = S3User(after["access_key"], after["secret_key"])
    assert s3.can_put(BUCKET, f"users-general-warehouse/{grace.name}/x.txt")


async def test_postgres_down_is_503_and_store_untouched(
    outage: Outage, kbase: KBase, services: Any
) -> None:
    known, fresh = kbase.add_user(), kbase.add_user()
    assert (await _get(outage, known)).status_code == 200
    await outage.proxies["postgres"].cut()
    try:
        _assert_503(await _get(outage, known), 50020)
        _assert_503(await _get(outage, fresh), 50020)
        health = await outage.client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unhealthy"
        assert health.json()["dependencies"]["database"] == "unavailable"
    finally:
        await outage.proxies["postgres"].restore()
    assert await services.store.get_user(fresh.name) is None
    assert (await _get(outage, known)).status_code == 200


async def test_redis_down_blocks_issuing_but_not_cached_logins(
    outage: Outage, kbase: KBase, services: Any
) -> None:
    known, fresh = kbase.add_user(), kbase.add_user()
    cached = (await _get(outage, known)).json()
    await outage.proxies["redis"].cut()
    try:
        _assert_503(await _get(outage, fresh), 50030)
        assert (await _get(outage, known)).json() == cached
        health = await outage.client.get("/health")
        assert health.status_code == 503
        assert health.json()["dependencies"]["redis"] == "unavailable"
    finally:
        await outage.proxies["redis"].restore()
    assert await services.store.get_user(fresh.name) is None
    assert not await outage.row_exists(fresh.name, services)
    assert (await _get(outage, fresh)).status_code == 200


async def test_half_provisioned_user_is_finished_on_next_call(
    client: httpx.AsyncClient, kbase: KBase, services: Any
) -> None:
    """A crash after creating the MinIO user but before policies/markers/cache is repaired.

    The user is claimed as managed before the store user is created (what ``set_secret``
    does), so the crash leaves a managed user and the next login finishes it."""
    half = kbase.add_user()
    await services.managed.claim(half.name, actor=None)
    await services.store.set_user(half.name, "x" * 40)
    assert (await services.store.get_user(half.name)).policies == ()
    body = (await client.get("/credentials/", headers=half.headers)).json()
    user = await services.store.get_user(half.name)
    assert f"user-home-policy-{half.name}" in user.policies
    assert "globalusers" in user.groups
    s3 = S3User(body["access_key"], body["secret_key"])
    assert s3.can_put(BUCKET, f"users-general-warehouse/{half.name}/data/ok.txt")
    assert not S3User(half.name, "x" * 40).can_list(BUCKET, f"users-general-warehouse/{half.name}/")


async def test_auth_service_unreachable_is_503(app: Any, kbase: KBase) -> None:
    settings = Settings(kbase_auth_url="http://127.0.0.1:9/", auth_timeout_seconds=2)
    unreachable = create_app(settings)
    async with unreachable.router.lifespan_context(unreachable):
        transport = httpx.ASGITransport(app=unreachable)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            someone = kbase.add_user()
            response = await client.get("/credentials/", headers=someone.headers)
    _assert_503(response, 50010)


async def test_no_secret_in_any_log_line(
    client: httpx.AsyncClient,
    outage: Outage,
    kbase: KBase,
    service_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    someone = kbase.add_user()
    issued = [(await client.get("/credentials/", headers=someone.headers)).json()["secret_key"]]
    issued.append(
        (await client.post("/credentials/rotate", headers=someone.headers)).json()["secret_key"]
    )
    await outage.proxies["postgres"].cut()
    try:
        await _get(outage, kbase.add_user())
    finally:
        await outage.proxies["postgres"].restore()
    await outage.proxies["minio"].cut()
    try:
        await outage.client.post("/credentials/rotate", headers=someone.headers)
    finally:
        await outage.proxies["minio"].restore()
    issued.append((await _get(outage, someone)).json()["secret_key"])
    secrets = [
        *issued,
        someone.token,
        store_var(service_env, "OBJECT_STORE_SECRET_KEY"),
        service_env["MMS_DB_PASSWORD"],
        service_env["MMS_DB_ENCRYPTION_KEY"],
    ]
    assert len(caplog.records) > 0
    text_logged = caplog.text + "\n".join(logging.Formatter().format(r) for r in caplog.records)
    for secret in secrets:
        assert secret not in text_logged


def test_no_secret_on_any_process_command_line(service_env: dict[str, str]) -> None:
    secrets = [
        store_var(service_env, "OBJECT_STORE_SECRET_KEY"),
        service_env["MMS_DB_PASSWORD"],
        service_env["MMS_DB_ENCRYPTION_KEY"],
    ]
    seen = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        seen += 1
        for secret in secrets:
            assert secret not in cmdline, f"secret on the command line of pid {proc.name}"
    assert seen > 3
