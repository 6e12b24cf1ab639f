"""/tenants on the real stack: what the API answers, and what the object store then enforces."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy import text

from minio_manager.provisioning.membership import ChangeFeed, GroupMembership
from minio_manager.tenants import register as group_register
from minio_manager.tenants import store as tenant_store
from tests.support.governance import (
    BUCKET,
    add_member,
    assert_error,
    assign_steward,
    create_group,
    db_rows,
    delete_created_groups,
    group_name,
    issue,
    members_of,
    remember,
)
from tests.support.kbase import KBase, TestUser
from tests.support.store import open_store


@pytest_asyncio.fixture(scope="module", autouse=True)
async def _delete_groups_afterwards(client: httpx.AsyncClient, kbase: KBase) -> AsyncIterator[None]:
    yield
    await delete_created_groups(client, kbase.add_user(admin=True))


def general(tenant: str, rest: str) -> str:
    return f"tenant-general-warehouse/{tenant}/{rest}"


def sql(tenant: str, rest: str) -> str:
    return f"tenant-sql-warehouse/{tenant}/{rest}"


async def test_read_write_read_only_and_outsider_enforcement(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser
) -> None:
    tenant = await create_group(client, admin)
    writer, reader, outsider = kbase.add_user(), kbase.add_user(), kbase.add_user()
    s3w, s3r, s3o = [await issue(client, u) for u in (writer, reader, outsider)]
    await add_member(client, admin, tenant, writer.name, "read_write")
    await add_member(client, admin, tenant, reader.name, "read_only")

    data = general(tenant, "datasets/a.csv")
    table = sql(tenant, f"{tenant}_db/t.parquet")
    assert s3w.can_put(BUCKET, data) and s3w.can_get(BUCKET, data)
    assert s3w.can_put(BUCKET, table) and s3w.can_get(BUCKET, table)
    assert s3w.can_list(BUCKET, f"tenant-sql-warehouse/{tenant}/")
    # The SQL warehouse is writable only inside the tenant's own namespace.
    assert not s3w.can_put(BUCKET, sql(tenant, "other_db/t.parquet"))
    assert not s3w.can_put(BUCKET, sql(tenant, "loose.txt"))

    assert s3r.can_get(BUCKET, data) and s3r.can_get(BUCKET, table)
    assert s3r.can_list(BUCKET, f"tenant-general-warehouse/{tenant}/")
    assert not s3r.can_put(BUCKET, general(tenant, "datasets/b.csv"))
    assert not s3r.can_put(BUCKET, sql(tenant, f"{tenant}_db/u.parquet"))
    assert not s3r.can_delete(BUCKET, data)

    assert not s3o.can_get(BUCKET, data)
    assert not s3o.can_list(BUCKET, f"tenant-general-warehouse/{tenant}/")
    assert not s3o.can_put(BUCKET, general(tenant, "x.txt"))


async def test_moves_and_removal_are_enforced_at_once(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser, services: Any
) -> None:
    tenant = await create_group(client, admin)
    user = kbase.add_user()
    s3 = await issue(client, user)
    target = general(tenant, "shared/f.txt")

    await add_member(client, admin, tenant, user.name, "read_only")
    assert await members_of(services, tenant + "ro") == {user.name}
    assert s3.can_list(BUCKET, f"tenant-general-warehouse/{tenant}/")
    assert not s3.can_put(BUCKET, target)

    moved = await add_member(client, admin, tenant, user.name, "read_write")
    assert moved["access_level"] == "read_write"
    assert await members_of(services, tenant) == {user.name}
    assert await members_of(services, tenant + "ro") == set()
    assert s3.can_put(BUCKET, target)

    await add_member(client, admin, tenant, user.name, "read_only")
    assert await members_of(services, tenant) == set()
    assert not s3.can_put(BUCKET, general(tenant, "shared/g.txt"))
    assert s3.can_get(BUCKET, target)

    response = await client.delete(f"/tenants/{tenant}/members/{user.name}", headers=admin.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert not s3.can_get(BUCKET, target)
    assert await members_of(services, tenant + "ro") == set()


async def test_listing_counts_flags_and_sorting(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser
) -> None:
    tenant = await create_group(client, admin)
    member, reader, steward, outsider = (kbase.add_user() for _ in range(4))
    for u in (member, reader, steward, outsider):
        await issue(client, u)
    await add_member(client, admin, tenant, member.name)
    await add_member(client, admin, tenant, reader.name, "read_only")
    await assign_steward(client, admin, tenant, steward.name)

    async def entry(caller: TestUser) -> dict[str, Any]:
        response = await client.get("/tenants", headers=caller.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        names = [t["tenant_name"] for t in body]
        assert names == sorted(names)
        assert not any(n.endswith("ro") for n in names)
        assert "globalusers" in names
        (found,) = [t for t in body if t["tenant_name"] == tenant]
        return found

    mine = await entry(member)
    assert mine["member_count"] == 3
    assert (mine["is_member"], mine["is_steward"]) == (True, False)
    assert set(mine) == {
        "tenant_name",
        "display_name",
        "description",
        "website",
        "organization",
        "member_count",
        "is_member",
        "is_steward",
    }
    assert (await entry(reader))["is_member"] is True
    stewarded = await entry(steward)
    assert (stewarded["is_member"], stewarded["is_steward"]) == (True, True)
    theirs = await entry(outsider)
    assert (theirs["is_member"], theirs["is_steward"], theirs["member_count"]) == (False, False, 3)


async def test_detail_shows_emails_to_insiders_only(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser
) -> None:
    tenant = await create_group(client, admin)
    member = kbase.add_user(email="m@lab.example", display="Member Person")
    steward = kbase.add_user(email="s@lab.example")
    outsider = kbase.add_user()
    for u in (member, steward, outsider):
        await issue(client, u)
    await add_member(client, admin, tenant, member.name, "read_only")
    await assign_steward(client, admin, tenant, steward.name)

    inside = (await client.get(f"/tenants/{tenant}", headers=member.headers)).json()
    by_name = {m["username"]: m for m in inside["members"]}
    assert by_name[member.name] == {
        "username": member.name,
        "display_name": "Member Person",
        "email": "m@lab.example",
        "access_level": "read_only",
        "is_steward": False,
    }
    assert by_name[steward.name]["is_steward"] is True
    assert by_name[steward.name]["access_level"] == "read_write"
    assert inside["member_count"] == 2
    assert inside["stewards"][0]["email"] == "s@lab.example"
    assert inside["stewards"][0]["assigned_by"] == admin.name
    assert inside["storage_paths"] == {
        "general_warehouse": f"s3a://{BUCKET}/tenant-general-warehouse/{tenant}/",
        "sql_warehouse": f"s3a://{BUCKET}/tenant-sql-warehouse/{tenant}/",
        "namespace_prefix": f"{tenant}_",
    }
    assert inside["metadata"]["tenant_name"] == tenant
    assert inside["metadata"]["created_by"] == admin.name

    outside = (await client.get(f"/tenants/{tenant}", headers=outsider.headers)).json()
    assert {m["username"] for m in outside["members"]} == {member.name, steward.name}
    assert all(m["email"] is None for m in outside["members"])
    assert all(s["email"] is None for s in outside["stewards"])
    assert {m["display_name"] for m in outside["members"]} >= {"Member Person"}

    as_admin = (await client.get(f"/tenants/{tenant}", headers=admin.headers)).json()
    assert {m["email"] for m in as_admin["members"]} == {"m@lab.example", "s@lab.example"}


async def test_metadata_create_patch_delete(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser, services: Any
) -> None:
    tenant = group_name()
    missing = await client.post(f"/tenants/{tenant}", headers=admin.headers)
    assert_error(missing, 404, 40030)
    assert (
        await db_rows(services, "SELECT 1 FROM tenant_metadata WHERE tenant_name=:t", t=tenant)
        == []
    )

    await create_group(client, admin, tenant)  # creates the metadata row too
    again = await client.post(
        f"/tenants/{tenant}", json={"display_name": "ignored"}, headers=admin.headers
    )
    assert again.status_code == 200
    assert again.json()["display_name"] is None  # existing row returned unchanged

    steward = kbase.add_user()
    await issue(client, steward)
    await assign_steward(client, admin, tenant, steward.name)
    patched = await client.patch(
        f"/tenants/{tenant}",
        json={
            "display_name": "  Soil Lab  ",
            "website": "https://soil.example.org/x",
            "organization": "LBL",
        },
        headers=steward.headers,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["display_name"] == "Soil Lab"
    assert body["website"] == "https://soil.example.org/x"
    assert body["updated_by"] == steward.name
    assert body["created_by"] == admin.name

    only_description = await client.patch(
        f"/tenants/{tenant}", json={"description": "Soils"}, headers=admin.headers
    )
    assert only_description.json()["display_name"] == "Soil Lab"
    assert only_description.json()["description"] == "Soils"
    assert only_description.json()["updated_by"] == admin.name

    cleared = await client.patch(
        f"/tenants/{tenant}", json={"website": None}, headers=admin.headers
    )
    assert cleared.json()["website"] is None
    assert cleared.json()["organization"] == "LBL"

    listed = (await client.get("/tenants", headers=steward.headers)).json()
    (summary,) = [t for t in listed if t["tenant_name"] == tenant]
    assert (summary["display_name"], summary["organization"]) == ("Soil Lab", "LBL")

    deleted = await client.delete(f"/tenants/{tenant}", headers=admin.headers)
    assert deleted.status_code == 204
    assert (
        await db_rows(services, "SELECT 1 FROM tenant_stewards WHERE tenant_name=:t", t=tenant)
        == []
    )
    assert await members_of(services, tenant) == {steward.name}  # the group itself stays
    assert_error(await client.delete(f"/tenants/{tenant}", headers=admin.headers), 404, 40030)
    detail = (await client.get(f"/tenants/{tenant}", headers=steward.headers)).json()
    assert detail["metadata"]["created_by"] is None and detail["stewards"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"website": "ftp://example.org"},
        {"website": "javascript:alert(1)"},
        {"website": "https://"},
        {"website": "https://exa mple.org"},
        {"website": "https://example.org/" + "a" * 2048},
        {"display_name": 5},
        {"unknown": "field"},
        {"display_name": "x" * 257},
    ],
)
async def test_malformed_patch_bodies_change_nothing(
    client: httpx.AsyncClient, admin: TestUser, body: dict[str, Any], services: Any
) -> None:
    tenant = await create_group(client, admin)
    before = await db_rows(services, "SELECT * FROM tenant_metadata WHERE tenant_name=:t", t=tenant)
    response = await client.patch(f"/tenants/{tenant}", json=body, headers=admin.headers)
    assert_error(response, 422, 30010)
    after = await db_rows(services, "SELECT * FROM tenant_metadata WHERE tenant_name=:t", t=tenant)
    assert before == after


async def test_non_json_body_is_422(client: httpx.AsyncClient, admin: TestUser) -> None:
    tenant = await create_group(client, admin)
    response = await client.patch(
        f"/tenants/{tenant}",
        content=b"{not json",
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    assert_error(response, 422, 30010)


async def test_steward_rules(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser, services: Any
) -> None:
    tenant = await create_group(client, admin)
    steward, other_steward, member = kbase.add_user(), kbase.add_user(), kbase.add_user()
    for u in (steward, other_steward, member):
        await issue(client, u)
    await assign_steward(client, admin, tenant, steward.name)
    await assign_steward(client, admin, tenant, other_steward.name)

    added = await add_member(client, steward, tenant, member.name, "read_only")
    assert added["access_level"] == "read_only" and added["is_steward"] is False
    assert_error(
        await client.delete(f"/tenants/{tenant}/members/{steward.name}", headers=steward.headers),
        403,
        40020,
    )
    assert_error(
        await client.delete(
            f"/tenants/{tenant}/members/{other_steward.name}", headers=steward.headers
        ),
        403,
        40020,
    )
    assert await members_of(services, tenant) == {steward.name, other_steward.name}
    removed = await client.delete(
        f"/tenants/{tenant}/members/{member.name}", headers=steward.headers
    )
    assert removed.status_code == 204
    assert await members_of(services, tenant + "ro") == set()

    # An admin removing a steward from the tenant also ends the stewardship.
    await client.delete(f"/tenants/{tenant}/members/{other_steward.name}", headers=admin.headers)
    stewards = await client.get(f"/tenants/{tenant}/stewards", headers=steward.headers)
    assert [s["username"] for s in stewards.json()] == [steward.name]

    # Removing a stewardship keeps the membership.
    gone = await client.delete(f"/tenants/{tenant}/stewards/{steward.name}", headers=admin.headers)
    assert gone.status_code == 204
    assert await members_of(services, tenant) == {steward.name}
    assert_error(
        await client.delete(f"/tenants/{tenant}/stewards/{steward.name}", headers=admin.headers),
        404,
        40030,
    )
    # ... and the former steward can no longer edit.
    assert_error(
        await client.patch(
            f"/tenants/{tenant}", json={"description": "x"}, headers=steward.headers
        ),
        403,
        40020,
    )


async def test_assigning_a_steward(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser, services: Any
) -> None:
    tenant = await create_group(client, admin)
    newcomer, reader = kbase.add_user(), kbase.add_user()
    s3 = await issue(client, newcomer)
    await issue(client, reader)
    first = await assign_steward(client, admin, tenant, newcomer.name)
    assert first["assigned_by"] == admin.name and first["username"] == newcomer.name
    assert await members_of(services, tenant) == {newcomer.name}
    assert s3.can_put(BUCKET, general(tenant, "projects/p.txt"))
    again = await assign_steward(client, admin, tenant, newcomer.name)
    assert again["assigned_at"] == first["assigned_at"]  # idempotent

    # A read-only member stays read-only: they are already a member.
    await add_member(client, admin, tenant, reader.name, "read_only")
    await assign_steward(client, admin, tenant, reader.name)
    assert await members_of(services, tenant + "ro") == {reader.name}
    assert await members_of(services, tenant) == {newcomer.name}
    rows = await db_rows(
        services,
        "SELECT username FROM tenant_stewards WHERE tenant_name=:t ORDER BY username",
        t=tenant,
    )
    assert rows == sorted((n,) for n in (newcomer.name, reader.name))


async def test_members_and_stewards_lists(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser
) -> None:
    tenant = await create_group(client, admin)
    a, b, outsider = kbase.add_user(), kbase.add_user(), kbase.add_user()
    for u in (a, b, outsider):
        await issue(client, u)
    await add_member(client, admin, tenant, a.name)
    await add_member(client, admin, tenant, b.name, "read_only")
    members = (await client.get(f"/tenants/{tenant}/members", headers=b.headers)).json()
    assert [(m["username"], m["access_level"]) for m in members] == sorted(
        [(a.name, "read_write"), (b.name, "read_only")]
    )
    assert all(m["email"] for m in members)
    assert_error(
        await client.get(f"/tenants/{tenant}/members", headers=outsider.headers), 403, 40020
    )
    assert_error(
        await client.get(f"/tenants/{tenant}/stewards", headers=outsider.headers), 403, 40020
    )
    assert (await client.get(f"/tenants/{tenant}/stewards", headers=a.headers)).json() == []


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/tenants/{bad}", 400, 40010),
        ("/tenants/{tenant}ro", 400, 40010),
        ("/tenants/{missing}", 404, 40030),
        ("/tenants/{bad}/members", 400, 40010),
        ("/tenants/{missing}/members", 404, 40030),
        ("/tenants/{missing}/stewards", 404, 40030),
    ],
)
async def test_bad_and_unknown_tenants_on_reads(
    client: httpx.AsyncClient, admin: TestUser, path: str, status: int, code: int
) -> None:
    tenant = await create_group(client, admin)
    url = path.format(bad="Bad_Name", tenant=tenant, missing=group_name("nx"))
    assert_error(await client.get(url, headers=admin.headers), status, code)


@pytest.mark.parametrize(
    ("method", "path", "params", "status", "code"),
    [
        ("POST", "/tenants/{tenant}/members/{user}", {"permission": "owner"}, 422, 30010),
        ("POST", "/tenants/{tenant}/members/{user}", {"permission": ""}, 422, 30010),
        ("POST", "/tenants/{tenant}/members/bad..name", {}, 400, 20030),
        ("POST", "/tenants/{tenant}/members/{nobody}", {}, 404, 20031),
        ("POST", "/tenants/{missing}/members/{user}", {}, 404, 40030),
        ("POST", "/tenants/admin/members/{user}", {}, 400, 40010),
        ("POST", "/tenants/{tenant}ro/members/{user}", {}, 400, 40010),
        ("DELETE", "/tenants/{tenant}/members/{nobody}", {}, 404, 20031),
        ("DELETE", "/tenants/{tenant}/members/-x", {}, 400, 20030),
        ("POST", "/tenants/{tenant}/stewards/{nobody}", {}, 404, 20031),
        ("POST", "/tenants/{missing}/stewards/{user}", {}, 404, 40030),
        ("DELETE", "/tenants/{tenant}/stewards/{user}", {}, 404, 40030),
        ("PATCH", "/tenants/{missing}", {}, 404, 40030),
        ("POST", "/tenants/{bad}", {}, 400, 40010),
        ("DELETE", "/tenants/{bad}", {}, 400, 40010),
    ],
)
async def test_bad_input_changes_nothing(
    client: httpx.AsyncClient,
    kbase: KBase,
    admin: TestUser,
    services: Any,
    method: str,
    path: str,
    params: dict[str, str],
    status: int,
    code: int,
) -> None:
    tenant = await create_group(client, admin)
    user = kbase.add_user()
    await issue(client, user)
    missing, nobody = group_name("nx"), f"nobody{tenant}"
    url = path.format(tenant=tenant, user=user.name, missing=missing, nobody=nobody, bad="9bad")

    async def snapshot() -> tuple[Any, ...]:
        return (
            await members_of(services, tenant),
            await members_of(services, tenant + "ro"),
            await members_of(services, missing),
            await services.store.get_user(nobody),
            (await services.store.get_user(user.name)).groups,
            await db_rows(services, "SELECT * FROM tenant_metadata WHERE tenant_name=:t", t=tenant),
            await db_rows(services, "SELECT * FROM tenant_stewards WHERE tenant_name=:t", t=tenant),
            await db_rows(services, "SELECT count(*) FROM tenant_metadata"),
        )

    before = await snapshot()
    body = {"description": "x"} if method == "PATCH" else None
    response = await client.request(method, url, params=params, json=body, headers=admin.headers)
    assert_error(response, status, code)
    assert await snapshot() == before


async def test_every_change_is_audited(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser, services: Any
) -> None:
    tenant = await create_group(client, admin)
    user = kbase.add_user()
    await issue(client, user)
    await add_member(client, admin, tenant, user.name, "read_only")
    await add_member(client, admin, tenant, user.name, "read_write")
    await assign_steward(client, admin, tenant, user.name)
    await client.patch(f"/tenants/{tenant}", json={"description": "d"}, headers=user.headers)
    await client.delete(f"/tenants/{tenant}/stewards/{user.name}", headers=admin.headers)
    await client.delete(f"/tenants/{tenant}/members/{user.name}", headers=admin.headers)
    await client.delete(f"/tenants/{tenant}", headers=admin.headers)
    rows = await db_rows(
        services,
        "SELECT action, actor, target, details FROM audit_log"
        " WHERE target = :t OR target LIKE :p ORDER BY id",
        t=tenant,
        p=f"{tenant}/%",
    )
    assert [r[0] for r in rows] == [
        "group.create",
        "tenant.member.add",
        "tenant.member.add",
        "steward.assign",
        "tenant.update",
        "steward.remove",
        "tenant.member.remove",
        "tenant.delete",
    ]
    assert rows[2][3] == {"permission": "read_write", "previous": "read_only"}
    assert rows[4][1] == user.name


async def test_concurrent_moves_leave_one_membership(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser, services: Any
) -> None:
    tenant = await create_group(client, admin)
    user = kbase.add_user()
    await issue(client, user)
    levels = ["read_write", "read_only"] * 5
    responses = await asyncio.gather(
        *(
            client.post(
                f"/tenants/{tenant}/members/{user.name}",
                params={"permission": p},
                headers=admin.headers,
            )
            for p in levels
        )
    )
    assert [r.status_code for r in responses] == [200] * len(levels)
    rw, ro = await members_of(services, tenant), await members_of(services, tenant + "ro")
    assert rw is not None and ro is not None
    assert len(rw | ro) == 1 and not rw & ro
    # The moves ran one at a time: each saw the level the previous one left behind.
    moves = await db_rows(
        services,
        "SELECT details FROM audit_log WHERE action = 'tenant.member.add' AND target = :t"
        " ORDER BY id",
        t=f"{tenant}/{user.name}",
    )
    chain = [m[0] for m in moves]
    assert len(chain) == len(levels)
    for earlier, later in itertools.pairwise(chain):
        assert later["previous"] == earlier["permission"]
    assert ("read_write" if rw else "read_only") == chain[-1]["permission"]


# -- checks repeated under the tenant lock -------------------------------------------------------
async def test_changes_waiting_on_a_group_deletion_do_not_recreate_it(
    client: httpx.AsyncClient,
    kbase: KBase,
    admin: TestUser,
    services: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Steward assignment, member add and metadata edits that passed their checks before
    ``delete_group`` ran must find the tenant gone once they get the lock: adding a member
    to a deleted group would re-create it in the store without its policies or twin."""
    tenant = await create_group(client, admin)
    user = kbase.add_user()
    await issue(client, user)
    # The test holds the tenant lock itself and runs the real deletion inside it, so the
    # calls below are certain to have passed their early checks and to wait for the lock.
    monkeypatch.setattr(services.management, "_group_lock", lambda _: contextlib.nullcontext())
    async with services.tenants.group_lock(tenant):
        waiting = [
            asyncio.create_task(
                client.post(f"/tenants/{tenant}/stewards/{user.name}", headers=admin.headers)
            ),
            asyncio.create_task(
                client.post(
                    f"/tenants/{tenant}/members/{user.name}",
                    params={"permission": "read_only"},
                    headers=admin.headers,
                )
            ),
            asyncio.create_task(
                client.patch(f"/tenants/{tenant}", json={"description": "x"}, headers=admin.headers)
            ),
            asyncio.create_task(client.post(f"/tenants/{tenant}", headers=admin.headers)),
        ]
        await asyncio.sleep(1.0)
        deleted = await client.delete(f"/management/groups/{tenant}", headers=admin.headers)
        assert deleted.status_code == 200, deleted.text
    for response in await asyncio.gather(*waiting):
        assert_error(response, 404, 40030)
    assert await members_of(services, tenant) is None
    assert await members_of(services, tenant + "ro") is None
    assert tenant not in (await services.store.get_user(user.name)).groups
    for table in ("tenant_metadata", "tenant_stewards"):
        query = f"SELECT 1 FROM {table} WHERE tenant_name=:t"  # noqa: S608
        assert await db_rows(services, query, t=tenant) == []


async def test_a_group_lock_held_too_long_is_409_group_busy_and_changes_nothing(
    client: httpx.AsyncClient,
    kbase: KBase,
    admin: TestUser,
    services: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant = await create_group(client, admin)
    user = kbase.add_user()
    await issue(client, user)
    monkeypatch.setattr(services.tenants, "_wait", 0.5)
    async with services.tenants.group_lock(tenant):
        response = await client.post(
            f"/tenants/{tenant}/members/{user.name}",
            params={"permission": "read_write"},
            headers=admin.headers,
        )
    assert_error(response, 409, 20046)
    assert "try again" in response.json()["message"]
    assert user.name not in (await members_of(services, tenant) or set())


async def test_steward_status_of_a_removed_member_is_checked_under_the_lock(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser, services: Any
) -> None:
    """A steward's removal of a member who became a steward while the call waited is 403."""
    tenant = await create_group(client, admin)
    steward, target = kbase.add_user(), kbase.add_user()
    for u in (steward, target):
        await issue(client, u)
    await assign_steward(client, admin, tenant, steward.name)
    await add_member(client, admin, tenant, target.name)
    async with services.tenants.group_lock(tenant):
        removal = asyncio.create_task(
            client.delete(f"/tenants/{tenant}/members/{target.name}", headers=steward.headers)
        )
        await asyncio.sleep(1.0)
        # An admin makes the target a steward meanwhile (written directly: the API call
        # would itself wait for the lock held here).
        async with services.engine.begin() as conn:
            await tenant_store.add_steward(conn, tenant, target.name, admin.name)
    assert_error(await removal, 403, 40020)
    assert await members_of(services, tenant) == {steward.name, target.name}
    assert await db_rows(
        services,
        "SELECT 1 FROM tenant_stewards WHERE tenant_name=:t AND username=:u",
        t=tenant,
        u=target.name,
    ) == [(1,)]


# -- the membership cache ------------------------------------------------------------------------
async def test_tenant_listing_is_served_from_the_cache(
    client: httpx.AsyncClient,
    kbase: KBase,
    admin: TestUser,
    services: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant = await create_group(client, admin)
    user = kbase.add_user()
    await issue(client, user)
    # A lifetime no loaded machine can cross: a slow first fill must not reach refresh-ahead age.
    monkeypatch.setattr(services.membership, "_ttl", 600.0)
    services.membership.invalidate()
    await client.get("/tenants", headers=user.headers)
    before = services.membership.fetches
    for _ in range(3):
        assert (await client.get("/tenants", headers=user.headers)).status_code == 200
    assert services.membership.fetches == before  # no store round trip at all

    # A change made through this process is visible to the very next read.
    await add_member(client, admin, tenant, user.name)
    listed = (await client.get("/tenants", headers=user.headers)).json()
    (entry,) = [t for t in listed if t["tenant_name"] == tenant]
    assert entry["is_member"] is True and entry["member_count"] == 1


async def test_a_warm_listing_reads_one_row_and_still_shows_every_change(
    client: httpx.AsyncClient,
    kbase: KBase,
    admin: TestUser,
    services: Any,
    two_replicas: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Repeated listings reuse the kept one (no rows read, no store call), and metadata,
    stewardship and membership changed through another replica show in the very next one."""
    tenant = await create_group(client, admin)
    user = kbase.add_user()
    await issue(client, user)
    monkeypatch.setattr(services.membership, "_ttl", 600.0)  # no entry comes due in the test
    monkeypatch.setattr(services.membership, "_max_age", 600.0)
    rebuilt: list[str] = []
    read_rows = tenant_store.listing

    async def counting(reader: Any, who: str) -> Any:
        rebuilt.append(who)
        return await read_rows(reader, who)

    monkeypatch.setattr(tenant_store, "listing", counting)
    other = httpx.AsyncClient(base_url=two_replicas[0], timeout=120)

    async def entry() -> dict[str, Any]:
        response = await client.get("/tenants", headers=user.headers)
        assert response.status_code == 200, response.text
        (found,) = [t for t in response.json() if t["tenant_name"] == tenant]
        return dict(found)

    try:
        await entry()  # fills the cache (which moves its stamp)
        await entry()  # so this one builds the listing it keeps
        rebuilt.clear()
        fetches = services.membership.fetches
        for _ in range(3):
            assert await entry() == {**await entry(), "is_member": False, "is_steward": False}
        assert rebuilt == [] and services.membership.fetches == fetches

        response = await other.post(f"/tenants/{tenant}", headers=admin.headers)
        assert response.status_code in (200, 201), response.text  # the metadata row exists
        response = await other.patch(
            f"/tenants/{tenant}", json={"display_name": "Renamed"}, headers=admin.headers
        )
        assert response.status_code == 200, response.text
        assert (await entry())["display_name"] == "Renamed"

        response = await other.post(
            f"/tenants/{tenant}/stewards/{user.name}", headers=admin.headers
        )
        assert response.status_code in (200, 201, 202), response.text
        assert await entry() == {
            **await entry(),
            "is_member": True,
            "is_steward": True,
            "member_count": 1,
        }
        response = await other.delete(
            f"/tenants/{tenant}/members/{user.name}", headers=admin.headers
        )
        assert response.status_code == 204, response.text
        found = await entry()
        assert (found["is_member"], found["member_count"]) == (False, 0)

        # A burst after a change shares the rebuilds instead of making one each.
        services.membership.invalidate()
        rebuilt.clear()
        bodies = await asyncio.gather(
            *(client.get("/tenants", headers=user.headers) for _ in range(16))
        )
        assert {b.status_code for b in bodies} == {200}
        assert len({b.content for b in bodies}) == 1
        assert 1 <= len(rebuilt) <= 3, rebuilt
    finally:
        await other.aclose()


async def test_cache_bound_for_changes_made_elsewhere(
    service_env: dict[str, str], services: Any, client: httpx.AsyncClient, admin: TestUser
) -> None:
    """Another replica's change (here: a second, independent store client) shows up within the
    TTL; a change through the cache's own store shows up at once."""
    tenant = await create_group(client, admin)
    env = service_env
    cached_side = open_store(env)
    other_replica = open_store(env)
    # A TTL long enough that scheduler hiccups on a loaded CI machine cannot cross a boundary.
    ttl = 2.0
    membership = GroupMembership(cached_side, ttl_seconds=ttl)
    user = "cacheuser" + tenant[1:]

    async def members() -> tuple[str, ...]:
        group = await membership.group(tenant)
        assert group is not None
        return group.members

    try:
        await other_replica.set_user(user, "s" * 40)
        assert await members() == ()
        await other_replica.add_group_members(tenant, [user])
        assert await members() == ()  # stale, but younger than the TTL
        await asyncio.sleep(ttl * 1.2)
        assert await members() == (user,)  # expired: refetched

        await other_replica.remove_group_members(tenant, [user])
        await asyncio.sleep(ttl * 0.6)
        assert await members() == (user,)  # past half-life: served, and refreshed behind
        for _ in range(int(ttl * 4)):  # within ~0.4 s: the refresh lands well before expiry
            if await members() == ():
                break
            await asyncio.sleep(0.05)
        assert await members() == ()

        await membership.store.add_group_members(tenant, [user])
        assert await members() == (user,)  # a change through the cache's own store: at once
        assert await membership.user_groups(user) == (tenant,)
        await membership.store.remove_group_members(tenant, [user])
        assert await members() == ()
        assert await membership.user_groups(user) == ()
    finally:
        await other_replica.remove_group_members(tenant, [user])
        await other_replica.delete_user(user)
        await cached_side.close()
        await other_replica.close()


async def test_changes_made_by_another_replica_are_heard_at_once(
    service_env: dict[str, str], client: httpx.AsyncClient, admin: TestUser
) -> None:
    """Two caches with lives no test can outlast, sharing Redis: a change through one is seen
    by the other's next read, and only what changed is fetched again."""
    tenant, other = await create_group(client, admin), await create_group(client, admin)
    env = service_env
    redis = Redis.from_url(env["REDIS_URL"])
    fetched: list[str] = []

    here_store, there_store = open_store(env), open_store(env)
    fetch_group = here_store.get_group

    async def counting_get_group(group: str) -> Any:
        fetched.append(group)
        return await fetch_group(group)

    here_store.get_group = counting_get_group  # type: ignore[method-assign]
    here = GroupMembership(here_store, ttl_seconds=600, redis=redis, max_age_seconds=600)
    there = GroupMembership(there_store, ttl_seconds=600, redis=redis, max_age_seconds=600)
    user = "feeduser" + tenant[1:]

    async def members(name: str) -> tuple[str, ...]:
        group = await here.group(name)
        assert group is not None
        return group.members

    try:
        await there.store.set_user(user, "s" * 40)
        assert await members(tenant) == () and await members(other) == ()
        assert await here.user_groups(user) == ()
        fetched.clear()

        await there.store.add_group_members(tenant, [user])
        assert await members(tenant) == (user,)
        assert await here.user_groups(user) == (tenant,)
        assert await members(other) == ()
        assert fetched == [tenant]  # the unchanged group was not fetched again

        await there.store.remove_group_members(tenant, [user])
        assert await members(tenant) == ()
        assert await here.user_groups(user) == ()

        # Redis forgot everything (a restart): the epoch went back, so nothing is trusted.
        await there.store.add_group_members(tenant, [user])
        await redis.delete(ChangeFeed.EPOCH, ChangeFeed.VERSIONS)
        fetched.clear()
        assert await members(other) == ()
        assert fetched == [other]
    finally:
        await there_store.remove_group_members(tenant, [user])
        await there_store.delete_user(user)
        await here_store.close()
        await there_store.close()
        await redis.aclose()


async def test_listing_answers_the_store_after_changes_on_other_replicas(
    client: httpx.AsyncClient,
    kbase: KBase,
    admin: TestUser,
    services: Any,
    two_replicas: list[str],
) -> None:
    """GET /tenants on every replica (and in-process) equals the store right after each
    member change made through another replica's API."""
    tenant = await create_group(client, admin)
    reader, writer = kbase.add_user(), kbase.add_user()
    for user in (reader, writer):
        await issue(client, user)
    replicas = [httpx.AsyncClient(base_url=url, timeout=120) for url in two_replicas]
    everyone = [client, *replicas]

    async def from_store() -> tuple[int, bool]:
        rw = await members_of(services, tenant) or set()
        ro = await members_of(services, tenant + "ro") or set()
        return len(rw | ro), reader.name in rw | ro

    async def listed(api: httpx.AsyncClient) -> tuple[int, bool]:
        response = await api.get("/tenants", headers=reader.headers)
        assert response.status_code == 200, response.text
        (entry,) = [t for t in response.json() if t["tenant_name"] == tenant]
        return entry["member_count"], entry["is_member"]

    try:
        for api in everyone:  # every cache warm
            assert await listed(api) == (0, False)
        steps = [
            (replicas[0], "post", reader.name, "read_only"),
            (replicas[1], "post", writer.name, "read_write"),
            (client, "post", reader.name, "read_write"),  # a move between t and tro
            (replicas[1], "delete", reader.name, None),
            (replicas[0], "delete", writer.name, None),
        ]
        for api, method, user, permission in steps:
            params = {"permission": permission} if permission else None
            response = await api.request(
                method, f"/tenants/{tenant}/members/{user}", params=params, headers=admin.headers
            )
            assert response.status_code in (200, 204), response.text
            expected = await from_store()
            for other in everyone:
                assert await listed(other) == expected
        assert await from_store() == (0, False)
    finally:
        for api in replicas:
            await api.aclose()


async def test_cache_reads_go_on_when_redis_is_unreachable(
    service_env: dict[str, str], client: httpx.AsyncClient, admin: TestUser
) -> None:
    """No feed to hear: reads still answer from the store (entries then live only
    ``GROUP_CACHE_SECONDS``), and a change through the cache's own store shows at once."""
    tenant = await create_group(client, admin)
    env = service_env
    store = open_store(env)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    deaf = Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    membership = GroupMembership(store, ttl_seconds=600, redis=deaf, max_age_seconds=600)
    user = "deafuser" + tenant[1:]
    try:
        await membership.store.set_user(user, "s" * 40)
        group = await membership.group(tenant)
        assert group is not None and group.members == ()
        await membership.store.add_group_members(tenant, [user])  # announcing fails: logged
        group = await membership.group(tenant)
        assert group is not None and group.members == (user,)
    finally:
        await store.remove_group_members(tenant, [user])
        await store.delete_user(user)
        await store.close()
        await deaf.aclose()


# -- names from PostgreSQL, never from MinIO's list-groups -----------------------------------------
class _StoreCalls:
    """Counts the object store adapter's ``list_groups`` and ``get_group`` calls (and, for
    MinIO, every admin request its HTTP client sends), whoever makes them."""

    def __init__(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        self.paths: list[str] = []
        for method in ("list_groups", "get_group"):
            original = getattr(store, method)
            monkeypatch.setattr(store, method, self._counted(method, original))
        http = getattr(store, "http", None)
        if http is not None:

            async def sent(request: httpx.Request) -> None:
                self.paths.append(request.url.path)

            monkeypatch.setitem(http.event_hooks, "request", [*http.event_hooks["request"], sent])

    def _counted(self, method: str, original: Any) -> Any:
        async def counted(*args: Any) -> Any:
            self.calls.append(method)
            return await original(*args)

        return counted


async def test_listings_take_names_from_postgresql_not_from_list_groups(
    client: httpx.AsyncClient,
    kbase: KBase,
    admin: TestUser,
    services: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MinIO's ``list-groups`` re-reads every group under its IAM write lock (seconds with a
    thousand groups, S3 authentication stalled meanwhile): no listing may call it, cold or
    after a change. What the store holds is still what is shown."""
    tenant, bare = await create_group(client, admin), await create_group(client, admin)
    gone = group_name()  # a metadata row whose groups are not in the store
    user, joiner = kbase.add_user(), kbase.add_user()
    for u in (user, joiner):
        await issue(client, u)
    await add_member(client, admin, tenant, user.name, "read_only")
    assert (await client.delete(f"/tenants/{bare}", headers=admin.headers)).status_code == 204
    async with services.engine.begin() as conn:
        await tenant_store.create(conn, gone, admin.name, {})
    store = services.membership._raw
    assert services.store._inner is store  # every caller goes through the counted adapter
    counted = _StoreCalls(store, monkeypatch)

    async def listings() -> tuple[dict[str, Any], list[str], dict[str, Any]]:
        tenants = await client.get("/tenants", headers=user.headers)
        names = await client.get("/management/groups/names", headers=user.headers)
        groups = await client.get("/management/groups", headers=user.headers)
        for response in (tenants, names, groups):
            assert response.status_code == 200, response.text
        return (
            {t["tenant_name"]: t for t in tenants.json()},
            names.json()["group_names"],
            {g["group_name"]: g for g in groups.json()["groups"]},
        )

    try:
        services.membership.invalidate()  # cold: every group asked of the store
        listed, names, groups = await listings()
        assert "get_group" in counted.calls  # the counting works
        await add_member(client, admin, tenant, joiner.name)
        after, _, groups_after = await listings()
    finally:
        async with services.engine.begin() as conn:
            await tenant_store.delete_metadata(conn, gone)
    assert "list_groups" not in counted.calls
    if counted.paths:  # MinIO: not at the HTTP level either (``GET …/v3/groups``)
        assert any(p.endswith("/group") for p in counted.paths)
        assert not [p for p in counted.paths if p.endswith("/groups")]

    assert (listed[tenant]["member_count"], listed[tenant]["is_member"]) == (1, True)
    assert (after[tenant]["member_count"], after[tenant]["is_member"]) == (2, True)
    assert listed[bare]["display_name"] is None and listed[bare]["member_count"] == 0
    assert "globalusers" in listed and gone not in listed
    assert names == sorted(names) and list(listed) == sorted(listed)
    assert {tenant, tenant + "ro", bare, bare + "ro", "globalusers"} <= set(names)
    assert gone not in names and gone + "ro" not in names
    assert groups[tenant + "ro"]["members"] == [user.name] and groups[tenant]["members"] == []
    for name in (tenant, tenant + "ro", bare, bare + "ro"):  # as the store holds them
        assert await members_of(services, name) == set(groups_after[name]["members"])


async def test_groups_already_in_the_store_are_registered_once(
    client: httpx.AsyncClient, admin: TestUser, services: Any
) -> None:
    """Groups that predate the register (made before migration 0006, or by hand) are read
    from the store once, by the first start; after that the register is not refilled."""
    handmade = remember(group_name())
    await services.store.add_group_members(handmade, [])  # straight in the store
    async with services.engine.begin() as conn:
        await conn.execute(text("DELETE FROM store_groups WHERE name = '*'"))
    assert await group_register.fill_once(services.engine, services.store) is True
    assert await group_register.fill_once(services.engine, services.store) is False
    listed = (await client.get("/tenants", headers=admin.headers)).json()
    assert handmade in [t["tenant_name"] for t in listed]

    deleted = await client.delete(f"/management/groups/{handmade}", headers=admin.headers)
    assert deleted.status_code == 200, deleted.text
    assert await db_rows(services, "SELECT 1 FROM store_groups WHERE name=:g", g=handmade) == []
