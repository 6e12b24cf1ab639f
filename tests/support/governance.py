"""Helpers for tenant, group and management tests: random names, API shortcuts, DB peeks."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import text

from tests.support.kbase import TestUser
from tests.support.s3 import S3User

BUCKET = "cdm-lake"

CREATED_GROUPS: list[str] = []
"""Groups made by tests, deleted when their module ends: the object store is shared by every
test session, and ``GET /tenants`` lists every group in it."""


def remember(group: str) -> str:
    CREATED_GROUPS.append(group)
    return group


async def delete_created_groups(client: httpx.AsyncClient, admin: TestUser) -> None:
    slots = asyncio.Semaphore(8)

    async def delete(group: str) -> None:
        async with slots:
            for _ in range(3):  # the shared store can drop a connection under load (503)
                response = await client.delete(f"/management/groups/{group}", headers=admin.headers)
                if response.status_code != 503:
                    break
                await asyncio.sleep(0.5)
            assert response.status_code in (200, 404), response.text

    groups = list(dict.fromkeys(CREATED_GROUPS))
    CREATED_GROUPS.clear()
    await asyncio.gather(*(delete(g) for g in groups))


def group_name(prefix: str = "g") -> str:
    """A random valid base group name (lower-case alphanumerics, never ending in "ro")."""
    while True:
        name = f"{prefix}{uuid.uuid4().hex[:8]}"
        if not name.endswith("ro"):
            return name


def assert_error(response: httpx.Response, status: int, code: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_type", "message"}, body
    assert body["error"] == code, body


async def issue(client: httpx.AsyncClient, user: TestUser) -> S3User:
    """Provision ``user`` through GET /credentials/ and return their S3 view."""
    response = await client.get("/credentials/", headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    return S3User(body["access_key"], body["secret_key"])


async def create_group(client: httpx.AsyncClient, admin: TestUser, name: str | None = None) -> str:
    name = remember(name or group_name())
    response = await client.post(f"/management/groups/{name}", headers=admin.headers)
    assert response.status_code == 201, response.text
    return name


async def add_member(
    client: httpx.AsyncClient,
    actor: TestUser,
    tenant: str,
    user: str,
    permission: str = "read_write",
) -> dict[str, Any]:
    response = await client.post(
        f"/tenants/{tenant}/members/{user}",
        params={"permission": permission},
        headers=actor.headers,
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def assign_steward(
    client: httpx.AsyncClient, admin: TestUser, tenant: str, user: str
) -> dict[str, Any]:
    response = await client.post(f"/tenants/{tenant}/stewards/{user}", headers=admin.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def db_rows(services: Any, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async with services.engine.connect() as conn:
        result = await conn.execute(text(sql), params)
        return [tuple(row) for row in result]


async def members_of(services: Any, group: str) -> set[str] | None:
    """Members straight from the store (no cache); None if the group does not exist."""
    info = await services.store.get_group(group)
    return None if info is None else set(info.members)


def canonical(value: Any) -> Any:
    """A policy document with every list sorted: MinIO returns condition values in random
    order, so two reads of one unchanged policy need not compare equal as they come."""
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted((canonical(v) for v in value), key=repr)
    return value


async def policy_document(services: Any, name: str) -> Any:
    return canonical(await services.store.get_policy(name))
