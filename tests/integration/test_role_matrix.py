"""Every tenant, group, workspace and management call × every kind of caller.

Each case gets a fresh tenant (with the module's member and steward in it) and, where the call
needs one, a fresh target user, so allowed calls can really change things. A refused call must
answer the expected status and code *and* leave the tenant, the target and the metadata as
they were.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text

from tests.support.governance import (
    db_rows,
    delete_created_groups,
    group_name,
    issue,
    members_of,
    remember,
)
from tests.support.kbase import KBase, TestUser


@pytest_asyncio.fixture(scope="module", autouse=True)
async def _delete_groups_afterwards(client: httpx.AsyncClient, kbase: KBase) -> AsyncIterator[None]:
    yield
    await delete_created_groups(client, kbase.add_user(admin=True))


ROLES = ("anonymous", "user", "member", "steward", "admin")


@dataclass
class World:
    admin: TestUser
    user: TestUser
    member: TestUser
    steward: TestUser


@dataclass
class Case:
    tenant: str
    target: str  # a provisioned user; a member of the tenant, a steward when the call needs it
    fresh: str  # a name nobody uses yet (for creations)


@pytest_asyncio.fixture(scope="module")
async def world(client: httpx.AsyncClient, kbase: KBase) -> World:
    people = World(
        admin=kbase.add_user(admin=True),
        user=kbase.add_user(),
        member=kbase.add_user(),
        steward=kbase.add_user(),
    )
    for person in (people.admin, people.user, people.member, people.steward):
        await issue(client, person)
    return people


# (name, method, path template, body or None, needs target user, target is steward,
#  expected per role: 200-class status, or (status, code))
Expect = int | tuple[int, int]
ADMIN_ONLY: dict[str, Expect] = {
    "user": (403, 10040),
    "member": (403, 10040),
    "steward": (403, 10040),
}
INSIDERS: dict[str, Expect] = {"user": (403, 40020), "member": 200, "steward": 200, "admin": 200}
STEWARDS: dict[str, Expect] = {
    "user": (403, 40020),
    "member": (403, 40020),
    "steward": 200,
    "admin": 200,
}
ANYONE: dict[str, Expect] = {"user": 200, "member": 200, "steward": 200, "admin": 200}
MEMBERS_ONLY: dict[str, Expect] = {
    "user": (403, 40020),
    "member": 200,
    "steward": 200,
    "admin": (403, 40020),  # workspaces are the caller's own view: no admin override
}


@dataclass(frozen=True)
class Call:
    name: str
    method: str
    path: str
    expect: dict[str, Expect]
    body: dict[str, Any] | None = None
    target: str = "none"  # none | member | steward


def admin_only(status: int) -> dict[str, Expect]:
    return {**ADMIN_ONLY, "admin": status}


def stewards(status: int) -> dict[str, Expect]:
    return {**STEWARDS, "steward": status, "admin": status}


CALLS = [
    # tenants
    Call("tenants.list", "GET", "/tenants", ANYONE),
    Call("tenants.detail", "GET", "/tenants/{tenant}", ANYONE),
    Call("tenants.create", "POST", "/tenants/{tenant}", admin_only(200)),
    Call("tenants.update", "PATCH", "/tenants/{tenant}", STEWARDS, {"description": "d"}),
    Call("tenants.delete", "DELETE", "/tenants/{tenant}", admin_only(204)),
    Call("tenants.members", "GET", "/tenants/{tenant}/members", INSIDERS),
    Call("tenants.member.add", "POST", "/tenants/{tenant}/members/{target}", STEWARDS, None, "new"),
    Call(
        "tenants.member.remove",
        "DELETE",
        "/tenants/{tenant}/members/{target}",
        stewards(204),
        None,
        "member",
    ),
    Call("tenants.stewards", "GET", "/tenants/{tenant}/stewards", INSIDERS),
    Call(
        "tenants.steward.assign",
        "POST",
        "/tenants/{tenant}/stewards/{target}",
        admin_only(200),
        None,
        "member",
    ),
    Call(
        "tenants.steward.remove",
        "DELETE",
        "/tenants/{tenant}/stewards/{target}",
        admin_only(204),
        None,
        "steward",
    ),
    # workspaces
    Call("workspaces.me", "GET", "/workspaces/me", ANYONE),
    Call("workspaces.groups", "GET", "/workspaces/me/groups", ANYONE),
    Call("workspaces.policies", "GET", "/workspaces/me/policies", ANYONE),
    Call("workspaces.paths", "GET", "/workspaces/me/accessible-paths", ANYONE),
    Call("workspaces.sql", "GET", "/workspaces/me/sql-warehouse-prefix", ANYONE),
    Call("workspaces.namespace", "GET", "/workspaces/me/namespace-prefix", ANYONE),
    Call(
        "workspaces.namespace.tenant",
        "GET",
        "/workspaces/me/namespace-prefix?tenant={tenant}",
        MEMBERS_ONLY,
    ),
    Call("workspaces.group", "GET", "/workspaces/me/groups/{tenant}", MEMBERS_ONLY),
    Call(
        "workspaces.group.sql",
        "GET",
        "/workspaces/me/groups/{tenant}/sql-warehouse-prefix",
        MEMBERS_ONLY,
    ),
    # management
    Call("users.names", "GET", "/management/users/names", admin_only(200)),
    Call("users.list", "GET", "/management/users?page_size=5", admin_only(200)),
    Call("users.create", "POST", "/management/users/{fresh}", admin_only(201)),
    Call(
        "users.rotate",
        "POST",
        "/management/users/{target}/rotate-credentials",
        admin_only(200),
        None,
        "member",
    ),
    Call(
        "users.adopt", "POST", "/management/users/{target}/adopt", admin_only(200), None, "member"
    ),
    Call("users.delete", "DELETE", "/management/users/{target}", admin_only(200), None, "member"),
    Call(
        "users.rotate_all",
        "POST",
        "/management/credentials/rotate-all-credentials",
        admin_only(200),
    ),
    Call("groups.list", "GET", "/management/groups", ANYONE),
    Call("groups.names", "GET", "/management/groups/names", ANYONE),
    Call("groups.create", "POST", "/management/groups/{fresh}", admin_only(201)),
    Call(
        "groups.member.add",
        "POST",
        "/management/groups/{tenant}/members/{target}",
        admin_only(200),
        None,
        "new",
    ),
    Call(
        "groups.member.remove",
        "DELETE",
        "/management/groups/{tenant}/members/{target}",
        admin_only(200),
        None,
        "member",
    ),
    Call("groups.delete", "DELETE", "/management/groups/{tenant}", admin_only(200)),
]


async def _tenant_rows(services: Any, tenant: str, admin: str, steward: str) -> None:
    """Metadata and a steward row straight into the database, so that setting a case up does
    not itself go through the API under test."""
    async with services.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO tenant_metadata (tenant_name, created_by) VALUES (:t, :a)"
                " ON CONFLICT DO NOTHING"
            ),
            {"t": tenant, "a": admin},
        )
        await conn.execute(
            text(
                "INSERT INTO tenant_stewards (tenant_name, username, assigned_by)"
                " VALUES (:t, :s, :a)"
            ),
            {"t": tenant, "s": steward, "a": admin},
        )


async def _prepare(
    client: httpx.AsyncClient, kbase: KBase, services: Any, world: World, call: Call
) -> Case:
    """A fresh tenant with the module's member (read-write) and steward, plus the target."""
    tenant = remember(group_name("r"))
    await services.groups.ensure_group(tenant, [world.member.name])
    await _tenant_rows(services, tenant, world.admin.name, world.steward.name)
    target = ""
    if call.target != "none":
        person = kbase.add_user()
        await issue(client, person)
        target = person.name
        if call.target in ("member", "steward"):
            await services.store.add_group_members(tenant, [target])
        if call.target == "steward":
            await _tenant_rows(services, tenant, world.admin.name, target)
    await services.store.add_group_members(tenant, [world.steward.name])
    return Case(tenant=tenant, target=target, fresh=remember(group_name("f")))


async def _snapshot(services: Any, case: Case) -> tuple[Any, ...]:
    return (
        await members_of(services, case.tenant),
        await members_of(services, case.tenant + "ro"),
        await members_of(services, case.fresh),
        await services.store.get_user(case.fresh),
        await services.store.get_user(case.target) if case.target else None,
        await db_rows(
            services,
            "SELECT display_name, description, updated_by FROM tenant_metadata"
            " WHERE tenant_name = :t",
            t=case.tenant,
        ),
        await db_rows(
            services,
            "SELECT username FROM tenant_stewards WHERE tenant_name = :t ORDER BY username",
            t=case.tenant,
        ),
        await db_rows(
            services, "SELECT secret_key FROM user_credentials WHERE username = :u", u=case.target
        ),
    )


def _headers(world: World, role: str) -> dict[str, str]:
    if role == "anonymous":
        return {}
    person: TestUser = getattr(world, role)
    return person.headers


def _cases() -> list[Any]:
    return [pytest.param(call, role, id=f"{call.name}-{role}") for call in CALLS for role in ROLES]


@pytest.mark.parametrize(("call", "role"), _cases())
async def test_role_matrix(
    client: httpx.AsyncClient,
    kbase: KBase,
    services: Any,
    world: World,
    call: Call,
    role: str,
) -> None:
    case = await _prepare(client, kbase, services, world, call)
    path = call.path.format(tenant=case.tenant, target=case.target, fresh=case.fresh)
    expected: Expect = (401, 10010) if role == "anonymous" else call.expect[role]
    before = await _snapshot(services, case)
    response = await client.request(
        call.method, path, json=call.body, headers=_headers(world, role)
    )
    if isinstance(expected, tuple):
        status, code = expected
        assert response.status_code == status, response.text
        body = response.json()
        assert set(body) == {"error", "error_type", "message"}
        assert body["error"] == code, body
        assert await _snapshot(services, case) == before, "a refused call changed something"
    else:
        assert response.status_code == expected, response.text


def test_matrix_covers_every_route(app: Any) -> None:
    """A route added to these areas must be added to the matrix too."""

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]*\}", "{}", path.split("?")[0])

    covered = {(c.method, shape(c.path)) for c in CALLS}
    areas = ("/tenants", "/workspaces", "/management/users", "/management/groups")
    routes = {
        (method.upper(), shape(path))
        for path, operations in app.openapi()["paths"].items()
        if path.startswith((*areas, "/management/credentials"))
        for method in operations
    }
    assert routes == covered
