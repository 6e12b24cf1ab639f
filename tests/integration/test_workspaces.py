"""/workspaces: the caller's own view, checked against the store and against S3 enforcement."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.support.governance import (
    BUCKET,
    add_member,
    assert_error,
    create_group,
    delete_created_groups,
    group_name,
    issue,
)
from tests.support.kbase import KBase, TestUser
from tests.support.store import store_access_key


@pytest_asyncio.fixture(scope="module", autouse=True)
async def _delete_groups_afterwards(client: httpx.AsyncClient, kbase: KBase) -> AsyncIterator[None]:
    yield
    await delete_created_groups(client, kbase.add_user(admin=True))


async def get(client: httpx.AsyncClient, user: TestUser, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_workspace_before_and_after_provisioning(
    client: httpx.AsyncClient, kbase: KBase
) -> None:
    user = kbase.add_user()
    assert_error(await client.get("/workspaces/me", headers=user.headers), 404, 20031)
    assert (await get(client, user, "/workspaces/me/groups"))["groups"] == []

    await issue(client, user)
    me = await get(client, user, "/workspaces/me")
    assert me["username"] == user.name
    assert me["access_key"] == await store_access_key(user.name)
    assert me["secret_key"] == "<redacted>"
    assert me["home_paths"] == [
        f"s3a://{BUCKET}/users-general-warehouse/{user.name}/",
        f"s3a://{BUCKET}/users-sql-warehouse/{user.name}/",
    ]
    assert "globalusers" in me["groups"]
    assert [p["policy_name"] for p in me["user_policies"]] == [
        f"user-home-policy-{user.name}",
        f"user-system-policy-{user.name}",
    ]
    assert "group-policy-globalusers" in [p["policy_name"] for p in me["group_policies"]]
    assert me["total_policies"] == 2 + len(me["group_policies"])
    assert me["accessible_paths"] == sorted(me["accessible_paths"])
    for path in me["home_paths"]:
        assert path in me["accessible_paths"]
    assert f"s3a://cdm-spark-job-logs/spark-job-logs/{user.name}/" in me["accessible_paths"]
    assert all(p.startswith("s3a://") and p.endswith("/") for p in me["accessible_paths"])


async def test_groups_policies_and_paths_follow_membership(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser
) -> None:
    tenant, other = await create_group(client, admin), await create_group(client, admin)
    user = kbase.add_user()
    s3 = await issue(client, user)
    await add_member(client, admin, tenant, user.name)
    await add_member(client, admin, other, user.name, "read_only")

    groups = await get(client, user, "/workspaces/me/groups")
    assert set(groups["groups"]) == {"globalusers", tenant, other + "ro"}
    assert groups["group_count"] == 3

    policies = await get(client, user, "/workspaces/me/policies")
    assert policies["user_home_policy"]["policy_name"] == f"user-home-policy-{user.name}"
    names = {p["policy_name"] for p in policies["group_policies"]}
    assert {f"group-policy-{tenant}", f"group-policy-{other}ro"} <= names
    assert policies["total_policies"] == 2 + len(policies["group_policies"])
    document = policies["user_home_policy"]["policy_document"]
    assert document["version"] == "2012-10-17"
    statement = document["statement"][0]
    assert set(statement) == {"effect", "action", "resource", "condition", "principal"}
    assert statement["effect"] == "Allow"
    actions = {s["action"] for s in document["statement"]}
    assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket"} <= actions
    listing = next(s for s in document["statement"] if s["action"] == "s3:ListBucket")
    assert "s3:prefix" in listing["condition"]["StringLike"]

    paths = await get(client, user, "/workspaces/me/accessible-paths")
    assert paths["total_paths"] == len(paths["accessible_paths"])
    assert paths["accessible_paths"] == sorted(paths["accessible_paths"])
    assert f"s3a://{BUCKET}/tenant-general-warehouse/{tenant}/" in paths["accessible_paths"]
    assert f"s3a://{BUCKET}/tenant-general-warehouse/{other}/" in paths["accessible_paths"]
    # What the listing claims is what the store enforces.
    assert s3.can_put(BUCKET, f"tenant-general-warehouse/{tenant}/p.txt")
    assert s3.can_get(BUCKET, f"tenant-general-warehouse/{other}/README.txt")

    await client.delete(f"/tenants/{other}/members/{user.name}", headers=admin.headers)
    after = await get(client, user, "/workspaces/me/accessible-paths")
    assert f"s3a://{BUCKET}/tenant-general-warehouse/{other}/" not in after["accessible_paths"]
    assert other + "ro" not in (await get(client, user, "/workspaces/me/groups"))["groups"]


async def test_group_workspace_needs_membership(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser
) -> None:
    tenant = await create_group(client, admin)
    writer, reader, outsider = kbase.add_user(), kbase.add_user(), kbase.add_user()
    for u in (writer, reader, outsider):
        await issue(client, u)
    await add_member(client, admin, tenant, writer.name)
    await add_member(client, admin, tenant, reader.name, "read_only")

    for member in (writer, reader):
        body = await get(client, member, f"/workspaces/me/groups/{tenant}")
        assert body["group_name"] == tenant
        assert body["members"] == [writer.name] and body["member_count"] == 1
        assert f"s3a://{BUCKET}/tenant-general-warehouse/{tenant}/" in body["accessible_paths"]
        prefix = await get(client, member, f"/workspaces/me/groups/{tenant}/sql-warehouse-prefix")
        assert prefix == {
            "group_name": tenant,
            "sql_warehouse_prefix": f"s3a://{BUCKET}/tenant-sql-warehouse/{tenant}/",
        }
    ro_view = await get(client, reader, f"/workspaces/me/groups/{tenant}ro")
    assert ro_view["members"] == [reader.name]

    assert_error(
        await client.get(f"/workspaces/me/groups/{tenant}", headers=outsider.headers), 403, 40020
    )
    assert_error(
        await client.get(
            f"/workspaces/me/groups/{tenant}/sql-warehouse-prefix", headers=outsider.headers
        ),
        403,
        40020,
    )
    assert_error(
        await client.get(f"/workspaces/me/groups/{group_name('nx')}", headers=writer.headers),
        404,
        20041,
    )
    assert_error(await client.get("/workspaces/me/groups/Bad!", headers=writer.headers), 400, 20040)


async def test_prefixes(client: httpx.AsyncClient, kbase: KBase, admin: TestUser) -> None:
    tenant = await create_group(client, admin)
    member, outsider = kbase.add_user(), kbase.add_user()
    await issue(client, member)
    await issue(client, outsider)
    await add_member(client, admin, tenant, member.name, "read_only")

    own = await get(client, member, "/workspaces/me/sql-warehouse-prefix")
    assert own == {
        "username": member.name,
        "sql_warehouse_prefix": f"s3a://{BUCKET}/users-sql-warehouse/{member.name}/",
    }
    plain = await get(client, outsider, "/workspaces/me/namespace-prefix")
    assert plain == {
        "username": outsider.name,
        "user_namespace_prefix": f"u_{outsider.name}__",
        "tenant": None,
        "tenant_namespace_prefix": None,
    }
    with_tenant = await get(client, member, "/workspaces/me/namespace-prefix", tenant=tenant)
    assert with_tenant["tenant"] == tenant
    assert with_tenant["tenant_namespace_prefix"] == f"{tenant}_"
    assert with_tenant["user_namespace_prefix"] == f"u_{member.name}__"


@pytest.mark.parametrize(
    ("tenant", "status", "code"),
    [("{tenant}", 403, 40020), ("{missing}", 404, 40030), ("Bad", 400, 40010), ("", 422, 30010)],
)
async def test_namespace_prefix_refusals(
    client: httpx.AsyncClient,
    kbase: KBase,
    admin: TestUser,
    tenant: str,
    status: int,
    code: int,
) -> None:
    name = await create_group(client, admin)
    outsider = kbase.add_user()
    await issue(client, outsider)
    response = await client.get(
        "/workspaces/me/namespace-prefix",
        params={"tenant": tenant.format(tenant=name, missing=group_name("nx"))},
        headers=outsider.headers,
    )
    assert_error(response, status, code)


async def test_my_groups_is_one_cached_store_call(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser, services: Any
) -> None:
    tenant = await create_group(client, admin)
    user = kbase.add_user()
    await issue(client, user)
    await get(client, user, "/workspaces/me/groups")
    before = services.membership.fetches
    await get(client, user, "/workspaces/me/groups")
    assert services.membership.fetches == before
    await add_member(client, admin, tenant, user.name)
    assert tenant in (await get(client, user, "/workspaces/me/groups"))["groups"]
    assert services.membership.fetches == before + 1
