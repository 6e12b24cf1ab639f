"""Records always win: after a fault the object store converges to the records.

A second app (its own database, so only its reconciler works its outbox) reaches PostgreSQL,
Redis and MinIO through TCP proxies. The store is cut *mid-request*, right after the records
are committed (a checkpoint hook cuts the MinIO proxy when the principal is about to be
written): the call answers 202 pending, and once the proxy is back the reconciler finishes the
work — checked with S3 requests signed with the users' own keys.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio

from minio_manager import checkpoints
from minio_manager.config import Settings
from minio_manager.main import create_app
from tests.support.api import BUCKET, home_key, home_url
from tests.support.kbase import KBase, TestUser
from tests.support.proxy import TcpProxy
from tests.support.s3 import S3User
from tests.support.stack import connect, drop_database, recreate_database, store_var
from tests.support.wait import eventually

CONV_DB = f"mms_conv_{os.getpid()}"


class Proxied:
    def __init__(
        self, client: httpx.AsyncClient, proxies: dict[str, TcpProxy], env: dict[str, str]
    ) -> None:
        self.client = client
        self.proxies = proxies
        self.env = env

    async def issue(self, user: TestUser) -> tuple[S3User, dict[str, Any]]:
        response = await self.client.get("/credentials/", headers=user.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        return S3User(body["access_key"], body["secret_key"]), body

    async def query(self, sql: str, *args: Any) -> list[Any]:
        conn = await connect(self.env, CONV_DB)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def outbox_row(self, kind: str, name: str) -> Any:
        rows = await self.query(
            "SELECT * FROM policy_outbox WHERE kind = $1 AND name = $2", kind, name
        )
        return rows[0] if rows else None

    async def settled(self, kind: str, name: str) -> bool:
        row = await self.outbox_row(kind, name)
        return row is not None and row["generation"] == row["applied_generation"]


@pytest_asyncio.fixture(scope="module")
async def proxied(
    app: Any, stack: dict[str, str], service_env: dict[str, str]
) -> AsyncIterator[Proxied]:
    await recreate_database(stack, CONV_DB)
    minio_host, minio_port = (
        store_var(service_env, "OBJECT_STORE_ENDPOINT").split("//")[1].split(":")
    )
    redis_host, redis_port = service_env["REDIS_URL"].split("//")[1].split("/")[0].split(":")
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
        mms_db_name=CONV_DB,
        redis_url=f"redis://127.0.0.1:{proxies['redis'].port}/15",
        minio_timeout_seconds=5,
        credential_lock_wait_seconds=5,
        enforce_lock_wait_seconds=5,
    )
    proxied_app = create_app(settings)
    try:
        async with proxied_app.router.lifespan_context(proxied_app):
            transport = httpx.ASGITransport(app=proxied_app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://proxied", timeout=120
            ) as client:
                yield Proxied(client, proxies, {**stack, **service_env})
    finally:
        checkpoints.install(None)
        for proxy in proxies.values():
            await proxy.restore()
        await drop_database(stack, CONV_DB)


def cut_store_at(proxied: Proxied, checkpoint: str, subject: str) -> None:
    """Cut the MinIO proxy the first time ``checkpoint`` is reached for ``subject`` (after the
    records are committed, before the store is written)."""
    done = False

    async def hook(name: str, at: str) -> None:
        nonlocal done
        if not done and name == checkpoint and at == subject:
            done = True
            await proxied.proxies["minio"].cut()

    checkpoints.install(hook)


async def restore_store(proxied: Proxied) -> None:
    checkpoints.install(None)
    await proxied.proxies["minio"].restore()


async def test_store_down_mid_share_is_202_then_enforced_and_unshare_too(
    proxied: Proxied, kbase: KBase
) -> None:
    owner, grantee, admin = kbase.add_user(), kbase.add_user(), kbase.add_user(admin=True)
    owner_s3, _ = await proxied.issue(owner)
    grantee_s3, _ = await proxied.issue(grantee)
    key = home_key(owner, "data/conv/f.txt")
    assert owner_s3.can_put(BUCKET, key)
    body = {"path": home_url(owner, "data/conv"), "with_users": [grantee.name]}

    cut_store_at(proxied, "policy.rendered", f"user:{grantee.name}")
    try:
        response = await proxied.client.post("/sharing/share", json=body, headers=owner.headers)
        assert response.status_code == 202, response.text
        answer = response.json()
        assert answer["enforcement"] == "pending"
        assert answer["pending_principals"] == [f"user:{grantee.name}"]
        assert answer["shared_with_users"] == [grantee.name]
        listing = await proxied.client.get("/management/outbox", headers=admin.headers)
        assert listing.status_code == 200, listing.text
        rows = {(r["kind"], r["name"]): r for r in listing.json()["rows"]}
        row = rows[("user", grantee.name)]
        assert row["generation"] > row["applied_generation"]
        assert row["pending_since"] is not None
        health = (await proxied.client.get("/health")).json()
        assert health["outbox"]["pending"] >= 1
        assert not grantee_s3.can_get(BUCKET, key)
    finally:
        await restore_store(proxied)
    assert await eventually(lambda: grantee_s3.can_get(BUCKET, key))
    assert await eventually(lambda: proxied.settled("user", grantee.name))

    unshare = {"path": home_url(owner, "data/conv"), "from_users": [grantee.name]}
    cut_store_at(proxied, "policy.rendered", f"user:{grantee.name}")
    try:
        response = await proxied.client.post(
            "/sharing/unshare", json=unshare, headers=owner.headers
        )
        assert response.status_code == 202, response.text
        assert response.json()["enforcement"] == "pending"
        assert grantee_s3.can_get(BUCKET, key)  # not enforced yet: the store is down
    finally:
        await restore_store(proxied)
    assert await eventually(lambda: not grantee_s3.can_get(BUCKET, key))
    assert await eventually(lambda: proxied.settled("user", grantee.name))


async def test_store_down_mid_tenant_move_is_202_then_the_level_is_enforced(
    proxied: Proxied, kbase: KBase, services: Any
) -> None:
    admin, member = kbase.add_user(admin=True), kbase.add_user()
    member_s3, _ = await proxied.issue(member)
    tenant = f"cv{secrets.token_hex(4)}"
    created = await proxied.client.post(f"/management/groups/{tenant}", headers=admin.headers)
    assert created.status_code == 201, created.text
    added = await proxied.client.post(
        f"/tenants/{tenant}/members/{member.name}?permission=read_only", headers=admin.headers
    )
    assert added.status_code == 200, added.text
    assert added.json()["enforcement"] == "applied"
    prefix = f"tenant-general-warehouse/{tenant}/"
    assert member_s3.can_list(BUCKET, prefix)
    assert not member_s3.can_put(BUCKET, prefix + "ro.txt")

    cut_store_at(proxied, "member.decided", f"{tenant}/{member.name}")
    try:
        moved = await proxied.client.post(
            f"/tenants/{tenant}/members/{member.name}?permission=read_write",
            headers=admin.headers,
        )
        assert moved.status_code == 202, moved.text
        answer = moved.json()
        assert answer["enforcement"] == "pending"
        assert answer["access_level"] == "read_write"
        assert f"member:{tenant}/{member.name}" in answer["pending_principals"]
    finally:
        await restore_store(proxied)
    assert await eventually(lambda: member_s3.can_put(BUCKET, prefix + "rw.txt"))
    assert await eventually(lambda: proxied.settled("member", f"{tenant}ro/{member.name}"))
    # Each row converges on its own (the reconciler may finish them in either order).
    assert await eventually(lambda: proxied.settled("member", f"{tenant}/{member.name}"))
    found = await services.store.get_user(member.name)
    assert tenant in found.groups
    assert f"{tenant}ro" not in found.groups


async def test_postgres_down_is_503_and_nothing_recorded(proxied: Proxied, kbase: KBase) -> None:
    owner, grantee = kbase.add_user(), kbase.add_user()
    await proxied.issue(owner)
    await proxied.issue(grantee)
    body = {"path": home_url(owner, "data/pg"), "with_users": [grantee.name]}
    await proxied.proxies["postgres"].cut()
    try:
        response = await proxied.client.post("/sharing/share", json=body, headers=owner.headers)
    finally:
        await proxied.proxies["postgres"].restore()
    assert response.status_code == 503, response.text
    assert response.json()["error"] == 50020
    assert await proxied.query("SELECT 1 FROM shares WHERE owner = $1", owner.name) == []
    assert await proxied.outbox_row("user", grantee.name) is None


async def test_redis_down_sharing_works_rotation_503_cache_still_served(
    proxied: Proxied, kbase: KBase
) -> None:
    owner, grantee = kbase.add_user(), kbase.add_user()
    owner_s3, _ = await proxied.issue(owner)
    grantee_s3, cached = await proxied.issue(grantee)
    key = home_key(owner, "data/redis/f.txt")
    assert owner_s3.can_put(BUCKET, key)
    body = {"path": home_url(owner, "data/redis"), "with_users": [grantee.name]}
    await proxied.proxies["redis"].cut()
    try:
        response = await proxied.client.post("/sharing/share", json=body, headers=owner.headers)
        assert response.status_code == 200, response.text
        assert response.json()["enforcement"] == "applied"
        assert grantee_s3.can_get(BUCKET, key)
        rotated = await proxied.client.post("/credentials/rotate", headers=grantee.headers)
        assert rotated.status_code == 503, rotated.text
        assert rotated.json()["error"] == 50030
        again = await proxied.client.get("/credentials/", headers=grantee.headers)
        assert again.status_code == 200
        assert again.json()["secret_key"] == cached["secret_key"]
    finally:
        await proxied.proxies["redis"].restore()
    assert grantee_s3.can_get(BUCKET, key)


async def test_store_down_rotation_is_503_and_the_cached_pair_still_works(
    proxied: Proxied, kbase: KBase
) -> None:
    someone = kbase.add_user()
    s3, first = await proxied.issue(someone)
    await proxied.proxies["minio"].cut()
    try:
        rotated = await proxied.client.post("/credentials/rotate", headers=someone.headers)
        assert rotated.status_code == 503, rotated.text
        cached = await proxied.client.get("/credentials/", headers=someone.headers)
        assert cached.status_code == 200
        assert cached.json()["secret_key"] == first["secret_key"]
    finally:
        await proxied.proxies["minio"].restore()
    assert s3.can_list(BUCKET, home_key(someone) + "/")


async def test_outbox_listing_is_for_admins_only(proxied: Proxied, kbase: KBase) -> None:
    someone = kbase.add_user()
    response = await proxied.client.get("/management/outbox", headers=someone.headers)
    assert response.status_code == 403, response.text
    assert response.json()["error"] == 10040


async def test_rotate_all_stops_at_a_store_outage_and_says_so(
    proxied: Proxied, kbase: KBase
) -> None:
    admin = kbase.add_user(admin=True)
    users = [kbase.add_user() for _ in range(6)]
    pairs = [(await proxied.issue(u))[1] for u in users]
    await proxied.proxies["minio"].cut()
    try:
        response = await proxied.client.post(
            "/management/credentials/rotate-all-credentials", headers=admin.headers
        )
    finally:
        await proxied.proxies["minio"].restore()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["complete"] is False
    assert body["rotated"] == []
    assert body["not_rotated"]
    assert "not rotated" in body["message"]
    tried = {f["username"] for f in body["failures"]} | set(body["not_rotated"])
    assert {u.name for u in users} <= tried
    for user, pair in zip(users, pairs, strict=True):
        again = await proxied.client.get("/credentials/", headers=user.headers)
        assert again.json()["secret_key"] == pair["secret_key"]
        s3 = S3User(pair["access_key"], pair["secret_key"])
        assert s3.can_list(BUCKET, home_key(user) + "/")
