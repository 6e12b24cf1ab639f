"""/management users and groups on the real stack."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text

from minio_manager.errors import ServiceError
from minio_manager.locks import credential_lock_name
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
    policy_document,
    remember,
)
from tests.support.kbase import KBase, TestUser
from tests.support.s3 import S3User
from tests.support.store import list_keys, store_access_key


@pytest_asyncio.fixture(scope="module", autouse=True)
async def _delete_groups_afterwards(client: httpx.AsyncClient, kbase: KBase) -> AsyncIterator[None]:
    yield
    await delete_created_groups(client, kbase.add_user(admin=True))


SPARK_LOGS = "cdm-spark-job-logs"


def base_name() -> str:
    return f"m{uuid.uuid4().hex[:8]}"


async def add_share(
    services: Any, owner: str, key: str, target_type: str, target: str, level: str = "read"
) -> None:
    """A share record written the way the sharing service stores them, then applied."""
    async with services.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO shares (owner, bucket, key, target_type, target_name, level,"
                " created_by) VALUES (:o, :b, :k, :tt, :tn, :l, :o)"
            ),
            {"o": owner, "b": BUCKET, "k": key, "tt": target_type, "tn": target, "l": level},
        )
    if target_type == "user":
        await services.policies.sync_user(target)
    else:
        await services.policies.sync_group(target)


async def policy_names(services: Any) -> set[str]:
    return set(await services.store.list_policies())


async def all_keys(services: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = await list_keys(bucket, prefix)
    return keys


# -- users --------------------------------------------------------------------------------------
async def test_create_user_returns_the_stored_working_secret(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser
) -> None:
    name = base_name()
    created = await client.post(f"/management/users/{name}", headers=admin.headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["username"] == name
    assert body["access_key"] == body["s3_access_key"] == await store_access_key(name)
    assert body["s3_secret_key"] == body["secret_key"]
    assert body["operation"] == "create" and body["performed_by"] == admin.name
    assert body["home_paths"] == [
        f"s3a://{BUCKET}/users-general-warehouse/{name}/",
        f"s3a://{BUCKET}/users-sql-warehouse/{name}/",
    ]
    assert "globalusers" in body["groups"]
    assert body["total_policies"] >= 3  # home, system, globalusers
    s3 = S3User(body["access_key"], body["secret_key"])  # the name only on MinIO
    assert s3.can_put(BUCKET, f"users-general-warehouse/{name}/data/x.txt")

    again = (await client.post(f"/management/users/{name}", headers=admin.headers)).json()
    assert again["secret_key"] == body["secret_key"]
    assert s3.can_get(BUCKET, f"users-general-warehouse/{name}/data/x.txt")
    user = kbase.add_user(name)
    login = (await client.get("/credentials/", headers=user.headers)).json()
    assert login["secret_key"] == body["secret_key"]


async def test_rotate_user_credentials(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser, services: Any
) -> None:
    unknown = base_name()
    assert_error(
        await client.post(f"/management/users/{unknown}/rotate-credentials", headers=admin.headers),
        404,
        20031,
    )
    assert await services.store.get_user(unknown) is None  # not silently created
    assert (
        await db_rows(services, "SELECT 1 FROM user_credentials WHERE username=:u", u=unknown) == []
    )

    user = kbase.add_user()
    old = await issue(client, user)
    rotated = await client.post(
        f"/management/users/{user.name}/rotate-credentials", headers=admin.headers
    )
    assert rotated.status_code == 200
    body = rotated.json()
    assert body["operation"] == "rotate"
    assert body["s3_access_key"] == body["access_key"] == await store_access_key(user.name)
    assert body["s3_secret_key"] == body["secret_key"]
    key = f"users-general-warehouse/{user.name}/data/r.txt"
    assert not old.can_put(BUCKET, key)
    assert S3User(body["access_key"], body["secret_key"]).can_put(BUCKET, key)
    assert (await client.get("/credentials/", headers=user.headers)).json()["secret_key"] == body[
        "secret_key"
    ]


async def test_admin_rotation_waiting_on_a_deletion_does_not_recreate_the_user(
    client: httpx.AsyncClient,
    kbase: KBase,
    admin: TestUser,
    services: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Admin rotations that passed their checks before ``delete_user`` ran find the user gone
    once they get the credential lock: 404 / a per-user failure, and nobody re-created."""
    user = kbase.add_user()
    await issue(client, user)
    # The test holds the credential lock and runs the real deletion inside it, so both
    # rotations are certain to be waiting for the lock while the user is deleted.
    monkeypatch.setattr(services.management, "_credential_lock", lambda _: contextlib.nullcontext())
    async with services.locks.hold(
        credential_lock_name(user.name),
        wait_seconds=10,
        expiry_seconds=120,
        on_timeout=lambda name: ServiceError(f"test could not take {name}"),
    ):
        single = asyncio.create_task(
            client.post(f"/management/users/{user.name}/rotate-credentials", headers=admin.headers)
        )
        every = asyncio.create_task(
            client.post("/management/credentials/rotate-all-credentials", headers=admin.headers)
        )
        await asyncio.sleep(1.0)
        deleted = await client.delete(f"/management/users/{user.name}", headers=admin.headers)
        assert deleted.status_code == 200, deleted.text
    assert_error(await single, 404, 20031)
    everyone = await every
    assert everyone.status_code == 200, everyone.text
    failures = {f["username"]: f["error"] for f in everyone.json()["failures"]}
    assert "not found" in failures[user.name]
    assert user.name not in everyone.json()["rotated"]
    assert await services.store.get_user(user.name) is None
    assert (
        await db_rows(services, "SELECT 1 FROM user_credentials WHERE username=:u", u=user.name)
        == []
    )

    # The user's own rotation still provisions them, as their first login would.
    own = await client.post("/credentials/rotate", headers=user.headers)
    assert own.status_code == 200, own.text
    s3 = S3User(own.json()["access_key"], own.json()["secret_key"])  # the name only on MinIO
    assert s3.can_put(BUCKET, f"users-general-warehouse/{user.name}/data/back.txt")


async def test_shares_committed_during_a_user_deletion_are_swept(
    client: httpx.AsyncClient,
    kbase: KBase,
    admin: TestUser,
    services: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A share to (or from) a user being deleted checks that the user exists (it does: the
    store user goes last) and commits after the deletion's transaction; the deletion's final
    sweep removes those rows and re-renders the other side."""
    owner, victim, other = kbase.add_user(), kbase.add_user(), kbase.add_user()
    s3_owner = await issue(client, owner)
    s3_victim, s3_other = await issue(client, victim), await issue(client, other)
    owner_file = f"users-general-warehouse/{owner.name}/data/late/f.txt"
    victim_file = f"users-general-warehouse/{victim.name}/data/given/f.txt"
    assert s3_owner.can_put(BUCKET, owner_file) and s3_victim.can_put(BUCKET, victim_file)
    original = services.policies.remove_user_policies

    async def share_meanwhile(name: str) -> None:
        await services.sharing.share(
            owner.name,
            f"s3a://{BUCKET}/users-general-warehouse/{owner.name}/data/late",
            [victim.name],
            [],
            "read",
        )
        await services.sharing.share(
            victim.name,
            f"s3a://{BUCKET}/users-general-warehouse/{victim.name}/data/given",
            [other.name],
            [],
            "read",
        )
        assert s3_other.can_list(BUCKET, f"users-general-warehouse/{victim.name}/data/given/")
        await original(name)

    monkeypatch.setattr(services.policies, "remove_user_policies", share_meanwhile)
    response = await client.delete(f"/management/users/{victim.name}", headers=admin.headers)
    assert response.status_code == 200, response.text

    assert (
        await db_rows(
            services,
            "SELECT 1 FROM shares WHERE owner=:u OR (target_type='user' AND target_name=:u)",
            u=victim.name,
        )
        == []
    )
    # The grant the deleted user gave is gone from the other user's policy too.
    assert not s3_other.can_list(BUCKET, f"users-general-warehouse/{victim.name}/data/given/")
    doc = await services.store.get_policy(f"user-home-policy-{other.name}")
    assert f"users-general-warehouse/{victim.name}/" not in str(doc)


async def test_share_to_a_group_being_deleted_is_refused_not_orphaned(
    client: httpx.AsyncClient,
    kbase: KBase,
    admin: TestUser,
    services: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A share to a group starts while the group is being deleted (the group still exists
    then): it waits for the group's lock, then finds the group gone — an error entry, no row."""
    owner = kbase.add_user()
    await issue(client, owner)
    group = await create_group(client, admin)
    original = services.policies.remove_group_policies
    started: list[asyncio.Task[Any]] = []

    async def share_meanwhile(name: str) -> None:
        if not started:
            started.append(
                asyncio.create_task(
                    services.sharing.share(
                        owner.name,
                        f"s3a://{BUCKET}/users-general-warehouse/{owner.name}/data/team",
                        [],
                        [group, group + "ro"],
                        "read",
                    )
                )
            )
            await asyncio.sleep(1.0)  # the share would check and commit now
        await original(name)

    monkeypatch.setattr(services.policies, "remove_group_policies", share_meanwhile)
    response = await client.delete(f"/management/groups/{group}", headers=admin.headers)
    assert response.status_code == 200, response.text
    outcome = await started[0]
    assert outcome.groups == []
    assert len(outcome.errors) == 2 and all("no such group" in e for e in outcome.errors)
    assert (
        await db_rows(
            services,
            "SELECT 1 FROM shares WHERE target_type='group' AND target_name IN (:g, :r)",
            g=group,
            r=group + "ro",
        )
        == []
    )
    assert await members_of(services, group) is None


async def test_user_names_and_paging(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser
) -> None:
    made = sorted((kbase.add_user() for _ in range(3)), key=lambda u: u.name)
    for u in made:
        await issue(client, u)
    names = (await client.get("/management/users/names", headers=admin.headers)).json()
    assert {u.name for u in made} <= set(names["usernames"])
    assert names["total_count"] == len(names["usernames"])
    assert names["usernames"] == sorted(names["usernames"])

    first = (
        await client.get("/management/users", params={"page_size": 2}, headers=admin.headers)
    ).json()
    assert first["page"] == 1 and first["page_size"] == 2 and first["has_prev"] is False
    assert first["total_count"] >= 3 and first["retrieved_count"] == 2
    assert first["total_pages"] == -(-first["total_count"] // 2)
    assert first["has_next"] is True

    everyone: list[dict[str, Any]] = []
    page = 1
    while True:
        body = (
            await client.get(
                "/management/users", params={"page": page, "page_size": 500}, headers=admin.headers
            )
        ).json()
        everyone += body["users"]
        if not body["has_next"]:
            break
        page += 1
    mine = {u["username"]: u for u in everyone if u["username"] in {m.name for m in made}}
    assert set(mine) == {u.name for u in made}
    one = mine[made[0].name]
    assert one["access_key"] == await store_access_key(made[0].name)
    assert one["enabled"] is True
    assert "globalusers" in one["groups"]
    assert set(one["policies"]) == {
        f"user-home-policy-{made[0].name}",
        f"user-system-policy-{made[0].name}",
    }

    past_end = (
        await client.get(
            "/management/users", params={"page": 10_000, "page_size": 500}, headers=admin.headers
        )
    ).json()
    assert past_end["users"] == [] and past_end["has_next"] is False


async def _all_listed(client: httpx.AsyncClient, admin: TestUser, **params: Any) -> set[str]:
    names: set[str] = set()
    page = 1
    while True:
        response = await client.get(
            "/management/users",
            params={**params, "page": page, "page_size": 500},
            headers=admin.headers,
        )
        assert response.status_code == 200, response.text
        names |= {u["username"] for u in response.json()["users"]}
        if not response.json()["has_next"]:
            return names
        page += 1


async def test_user_listings_and_regenerate_never_ask_the_store_for_its_users(
    client: httpx.AsyncClient,
    kbase: KBase,
    admin: TestUser,
    services: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MinIO seals its ``list-users`` answer with Argon2id (64 MiB of memory to open it):
    the user listings, regenerate and drift take names from PostgreSQL. A store user the
    service does not manage is listed only when asked for (``include_unmanaged``)."""
    managed = kbase.add_user()
    await issue(client, managed)
    foreign = f"svc{uuid.uuid4().hex[:10]}"
    await services.store.set_user(foreign, uuid.uuid4().hex)
    store = services.membership._raw
    assert services.store._inner is store  # every caller goes through the counted adapter
    calls: list[str] = []
    paths: list[str] = []
    original = store.list_users

    async def counted() -> list[str]:
        calls.append("list_users")
        return list(await original())

    monkeypatch.setattr(store, "list_users", counted)
    http = getattr(store, "http", None)
    if http is not None:  # MinIO: also at the HTTP level (``GET …/v3/list-users``)

        async def sent(request: httpx.Request) -> None:
            paths.append(request.url.path)

        monkeypatch.setitem(http.event_hooks, "request", [*http.event_hooks["request"], sent])
    try:
        names = (await client.get("/management/users/names", headers=admin.headers)).json()
        listed = await _all_listed(client, admin)
        for method, url in (
            ("POST", "/management/migrate/regenerate-policies"),
            ("GET", "/management/migrate/policy-drift"),
        ):
            response = await client.request(method, url, headers=admin.headers)
            assert response.status_code == 200, response.text
        assert calls == []
        assert not [p for p in paths if p.endswith("/list-users")]
        assert managed.name in names["usernames"] and foreign not in names["usernames"]
        assert managed.name in listed and foreign not in listed

        asked = await client.get(
            "/management/users/names", params={"include_unmanaged": "true"}, headers=admin.headers
        )
        assert {managed.name, foreign} <= set(asked.json()["usernames"])
        assert asked.json()["usernames"] == sorted(asked.json()["usernames"])
        assert {managed.name, foreign} <= await _all_listed(client, admin, include_unmanaged=True)
        assert calls  # the counting works
    finally:
        await services.store.delete_user(foreign)


@pytest.mark.parametrize(
    "params",
    [{"page": 0}, {"page": -1}, {"page_size": 0}, {"page_size": 501}, {"page": "abc"}],
)
async def test_bad_paging_is_422(
    client: httpx.AsyncClient, admin: TestUser, params: dict[str, Any]
) -> None:
    assert_error(
        await client.get("/management/users", params=params, headers=admin.headers), 422, 30010
    )


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("POST", "/management/users/bad..name", 400, 20030),
        ("POST", "/management/users/admin", 400, 20030),
        ("POST", "/management/users/-lead", 400, 20030),
        ("DELETE", "/management/users/bad..name", 400, 20030),
        ("DELETE", "/management/users/{unknown}", 404, 20031),
        ("POST", "/management/users/x_/rotate-credentials", 400, 20030),
    ],
)
async def test_bad_user_calls_change_nothing(
    client: httpx.AsyncClient,
    admin: TestUser,
    services: Any,
    method: str,
    path: str,
    status: int,
    code: int,
) -> None:
    target = path.format(unknown=base_name())
    name = target.split("/")[3]
    rows_before = await db_rows(services, "SELECT count(*) FROM user_credentials")
    response = await client.request(method, target, headers=admin.headers)
    assert_error(response, status, code)
    assert await services.store.get_user(name) is None
    assert await db_rows(services, "SELECT count(*) FROM user_credentials") == rows_before


async def test_delete_user_removes_everything_of_theirs_and_nothing_else(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser, services: Any
) -> None:
    name = base_name()
    bob, bobx = kbase.add_user(name), kbase.add_user(name + "x")
    s3_bob, s3_bobx = await issue(client, bob), await issue(client, bobx)
    tenant, other = await create_group(client, admin), await create_group(client, admin)
    await add_member(client, admin, tenant, bob.name)
    await add_member(client, admin, other, bob.name, "read_only")
    await add_member(client, admin, tenant, bobx.name)
    await assign_steward(client, admin, tenant, bob.name)
    await assign_steward(client, admin, tenant, bobx.name)

    own = [
        (BUCKET, f"users-general-warehouse/{name}/data/a.txt"),
        (BUCKET, f"users-sql-warehouse/{name}/u_{name}__db/t.parquet"),
        (SPARK_LOGS, f"spark-job-logs/{name}/app.log"),
    ]
    theirs = [
        (BUCKET, f"users-general-warehouse/{name}x/data/a.txt"),
        (BUCKET, f"users-sql-warehouse/{name}x/u_{name}x__db/t.parquet"),
        (SPARK_LOGS, f"spark-job-logs/{name}x/app.log"),
    ]
    for bucket, key in own:
        assert s3_bob.can_put(bucket, key)
    for bucket, key in theirs:
        assert s3_bobx.can_put(bucket, key)
    # bob shares with bobx and with the tenant; bobx shares with bob.
    await add_share(services, bob.name, f"users-general-warehouse/{name}/data", "user", bobx.name)
    await add_share(services, bob.name, f"users-general-warehouse/{name}/data", "group", tenant)
    await add_share(services, bobx.name, f"users-general-warehouse/{name}x/data", "user", bob.name)
    assert s3_bobx.can_get(BUCKET, own[0][1])

    response = await client.delete(f"/management/users/{name}", headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json()["resource_name"] == name

    assert await services.store.get_user(name) is None
    policies = await policy_names(services)
    assert not {p for p in policies if p.endswith(f"-{name}") or f"-{name}--" in p}
    assert f"user-home-policy-{name}x" in policies
    assert name not in (await members_of(services, tenant) or set())
    assert name not in (await members_of(services, other + "ro") or set())
    assert name not in (await members_of(services, "globalusers") or set())
    assert bobx.name in (await members_of(services, tenant) or set())
    for bucket, key in own:
        assert await all_keys(services, bucket, key) == []
    for bucket, key in theirs:
        assert await all_keys(services, bucket, key) == [key]
    assert await all_keys(services, BUCKET, f"users-general-warehouse/{name}x/README.txt")
    for table in ("user_credentials", "user_profiles", "tenant_stewards"):
        assert await db_rows(services, f"SELECT 1 FROM {table} WHERE username=:u", u=name) == []  # noqa: S608
    assert await db_rows(
        services, "SELECT 1 FROM tenant_stewards WHERE username=:u", u=bobx.name
    ) == [(1,)]
    assert (
        await db_rows(
            services,
            "SELECT 1 FROM shares WHERE owner=:u OR (target_type='user' AND target_name=:u)",
            u=name,
        )
        == []
    )
    # The grants bob gave are gone from the policies that held them.
    assert not s3_bobx.can_list(BUCKET, f"users-general-warehouse/{name}/")
    group_doc = await services.store.get_policy(f"group-policy-{tenant}")
    assert f"users-general-warehouse/{name}/" not in str(group_doc)
    # bobx is untouched and still works.
    assert s3_bobx.can_get(BUCKET, theirs[0][1])
    assert (await client.get("/credentials/", headers=bobx.headers)).status_code == 200
    assert_error(
        await client.delete(f"/management/users/{name}", headers=admin.headers), 404, 20031
    )
    audit = await db_rows(
        services, "SELECT actor FROM audit_log WHERE action='user.delete' AND target=:u", u=name
    )
    assert audit == [(admin.name,)]


async def test_rotate_all_reports_failures_and_keeps_going(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser, services: Any
) -> None:
    a, b = kbase.add_user(), kbase.add_user()
    old_a, old_b = await issue(client, a), await issue(client, b)
    broken = "bad..name" + uuid.uuid4().hex[:6]
    async with services.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO user_credentials (username, access_key, secret_key)"
                " VALUES (:u, :u, pgp_sym_encrypt('x', 'k'))"
            ),
            {"u": broken},
        )
    response = await client.post(
        "/management/credentials/rotate-all-credentials", headers=admin.headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # Other tests of the session leave rows of their own (e.g. a store user removed behind the
    # service's back); only this test's three rows are asserted on.
    ours = [f for f in body["failures"] if f["username"] in {broken, a.name, b.name}]
    assert [f["username"] for f in ours] == [broken]
    assert "Invalid username" in ours[0]["error"]
    assert {a.name, b.name} <= set(body["rotated"])
    assert body["rotated_count"] + body["failed_count"] == body["total_count"]
    assert body["performed_by"] == admin.name
    for user, old in ((a, old_a), (b, old_b)):
        key = f"users-general-warehouse/{user.name}/data/z.txt"
        assert not old.can_put(BUCKET, key)
        assert (await issue(client, user)).can_put(BUCKET, key)
    assert "secret" not in response.text.replace("secret_key", "")


# -- groups -------------------------------------------------------------------------------------
async def test_create_group_and_list(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser, services: Any
) -> None:
    name = remember(group_name())
    response = await client.post(f"/management/groups/{name}", headers=admin.headers)
    assert response.status_code == 201
    body = response.json()
    assert body["group_name"] == name and body["ro_group_name"] == name + "ro"
    assert body["members"] == [] and body["member_count"] == 0
    assert body["policy_name"] == f"group-policy-{name}"
    assert body["operation"] == "create" and body["performed_by"] == admin.name
    assert await members_of(services, name) == set()
    assert await members_of(services, name + "ro") == set()
    assert {f"group-policy-{name}", f"group-policy-{name}ro"} <= await policy_names(services)
    assert await db_rows(
        services, "SELECT created_by FROM tenant_metadata WHERE tenant_name=:t", t=name
    ) == [(admin.name,)]
    markers = await all_keys(services, BUCKET, f"tenant-general-warehouse/{name}/")
    assert f"tenant-general-warehouse/{name}/README.txt" in markers

    user = kbase.add_user()
    await issue(client, user)
    names = (await client.get("/management/groups/names", headers=user.headers)).json()
    assert {name, name + "ro", "globalusers"} <= set(names["group_names"])
    assert names["total_count"] == len(names["group_names"])
    listed = (await client.get("/management/groups", headers=user.headers)).json()
    by_name = {g["group_name"]: g for g in listed["groups"]}
    assert by_name[name] == {"group_name": name, "members": [], "member_count": 0}
    assert user.name in by_name["globalusers"]["members"]


async def test_new_group_does_not_inherit_share_rows_left_under_its_name(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser, services: Any
) -> None:
    """Share rows naming a group that does not exist (left by an earlier group of that name)
    are deleted when the name is created, before its policies are rendered."""
    owner, writer, reader = kbase.add_user(), kbase.add_user(), kbase.add_user()
    s3_owner = await issue(client, owner)
    s3_writer, s3_reader = await issue(client, writer), await issue(client, reader)
    key = f"users-general-warehouse/{owner.name}/data/old/f.txt"
    assert s3_owner.can_put(BUCKET, key)
    name = remember(group_name())
    async with services.engine.begin() as conn:
        for target, level in ((name, "write"), (name + "ro", "read")):
            await conn.execute(
                text(
                    "INSERT INTO shares (owner, bucket, key, target_type, target_name, level,"
                    " created_by) VALUES (:o, :b, :k, 'group', :t, :l, :o)"
                ),
                {
                    "o": owner.name,
                    "b": BUCKET,
                    "k": f"users-general-warehouse/{owner.name}/data/old",
                    "t": target,
                    "l": level,
                },
            )

    await create_group(client, admin, name)
    for group, member in ((name, writer), (name + "ro", reader)):
        added = await client.post(
            f"/management/groups/{group}/members/{member.name}", headers=admin.headers
        )
        assert added.status_code == 200, added.text
    for s3 in (s3_writer, s3_reader):
        assert not s3.can_get(BUCKET, key)
        assert not s3.can_list(BUCKET, f"users-general-warehouse/{owner.name}/data/old/")
    assert not s3_writer.can_put(BUCKET, f"users-general-warehouse/{owner.name}/data/old/w.txt")
    assert (
        await db_rows(
            services,
            "SELECT 1 FROM shares WHERE target_type='group' AND target_name IN (:g, :r)",
            g=name,
            r=name + "ro",
        )
        == []
    )
    for group in (name, name + "ro"):
        doc = await services.store.get_policy(f"group-policy-{group}")
        assert f"users-general-warehouse/{owner.name}/" not in str(doc)


@pytest.mark.parametrize(
    "name", ["Upper", "a", "1abc", "groupro", "admin", "has-dash", "x" * 63, "{fresh}ro"]
)
async def test_bad_group_names_are_refused(
    client: httpx.AsyncClient, admin: TestUser, services: Any, name: str
) -> None:
    name = name.format(fresh=group_name())

    async def state() -> tuple[Any, ...]:
        return (
            await services.store.get_group(name),
            await policy_document(services, f"group-policy-{name}"),
            await db_rows(services, "SELECT 1 FROM tenant_metadata WHERE tenant_name=:t", t=name),
        )

    before = await state()
    response = await client.post(f"/management/groups/{name}", headers=admin.headers)
    assert_error(response, 400, 20040)
    assert await state() == before


async def test_group_membership_calls(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser, services: Any
) -> None:
    name = await create_group(client, admin)
    user = kbase.add_user()
    s3 = await issue(client, user)
    key = f"tenant-general-warehouse/{name}/shared/m.txt"

    added = await client.post(
        f"/management/groups/{name}ro/members/{user.name}", headers=admin.headers
    )
    assert added.status_code == 200
    assert added.json()["members"] == [user.name] and added.json()["operation"] == "add_member"
    assert s3.can_list(BUCKET, f"tenant-general-warehouse/{name}/") and not s3.can_put(BUCKET, key)
    await client.post(f"/management/groups/{name}/members/{user.name}", headers=admin.headers)
    assert s3.can_put(BUCKET, key)
    removed = await client.delete(
        f"/management/groups/{name}/members/{user.name}", headers=admin.headers
    )
    assert removed.status_code == 200 and removed.json()["members"] == []
    assert not s3.can_put(BUCKET, f"tenant-general-warehouse/{name}/shared/n.txt")

    missing = group_name("nx")
    assert_error(
        await client.post(
            f"/management/groups/{missing}/members/{user.name}", headers=admin.headers
        ),
        404,
        20041,
    )
    assert await members_of(services, missing) is None  # not created on the fly
    assert_error(
        await client.post(
            f"/management/groups/{name}/members/{base_name()}", headers=admin.headers
        ),
        404,
        20031,
    )
    assert_error(
        await client.post(f"/management/groups/{name}/members/a..b", headers=admin.headers),
        400,
        20030,
    )
    assert_error(
        await client.delete(f"/management/groups/Bad/members/{user.name}", headers=admin.headers),
        400,
        20040,
    )
    assert await members_of(services, name) == set()
    assert await members_of(services, name + "ro") == {user.name}


async def test_delete_group_empties_and_removes_everything_of_it(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser, services: Any
) -> None:
    name = await create_group(client, admin)
    sibling = await create_group(client, admin, name + "x")
    writer, reader, owner = kbase.add_user(), kbase.add_user(), kbase.add_user()
    s3_writer = await issue(client, writer)
    s3_reader = await issue(client, reader)
    await issue(client, owner)
    await add_member(client, admin, name, writer.name)
    await add_member(client, admin, name, reader.name, "read_only")
    await add_member(client, admin, sibling, writer.name)
    await assign_steward(client, admin, name, writer.name)
    await assign_steward(client, admin, sibling, writer.name)
    data = f"tenant-general-warehouse/{name}/datasets/d.csv"
    sibling_data = f"tenant-general-warehouse/{sibling}/datasets/d.csv"
    assert s3_writer.can_put(BUCKET, data) and s3_writer.can_put(BUCKET, sibling_data)
    shared = f"users-general-warehouse/{owner.name}/data"
    await add_share(services, owner.name, shared, "group", name)
    await add_share(services, owner.name, shared, "group", name + "ro")
    await add_share(services, owner.name, shared, "group", sibling)

    response = await client.delete(f"/management/groups/{name}", headers=admin.headers)
    assert response.status_code == 200, response.text

    assert await members_of(services, name) is None
    assert await members_of(services, name + "ro") is None
    assert name not in (await services.store.get_user(writer.name)).groups
    assert name + "ro" not in (await services.store.get_user(reader.name)).groups
    policies = await policy_names(services)
    assert not {p for p in policies if p.startswith(f"group-policy-{name}") and sibling not in p}
    assert f"group-policy-{sibling}" in policies
    for table in ("tenant_metadata", "tenant_stewards"):
        assert await db_rows(services, f"SELECT 1 FROM {table} WHERE tenant_name=:t", t=name) == []  # noqa: S608
    assert await db_rows(
        services,
        "SELECT target_name FROM shares WHERE target_type='group' AND owner=:o",
        o=owner.name,
    ) == [(sibling,)]
    assert await all_keys(services, BUCKET, f"tenant-general-warehouse/{name}/") == []
    assert await all_keys(services, BUCKET, f"tenant-sql-warehouse/{name}/") == []
    assert not s3_writer.can_get(BUCKET, data) and not s3_reader.can_get(BUCKET, data)
    # The sibling tenant is untouched.
    assert await members_of(services, sibling) == {writer.name}
    assert s3_writer.can_get(BUCKET, sibling_data)
    assert await db_rows(
        services, "SELECT username FROM tenant_stewards WHERE tenant_name=:t", t=sibling
    ) == [(writer.name,)]
    listed = [
        t["tenant_name"] for t in (await client.get("/tenants", headers=writer.headers)).json()
    ]
    assert name not in listed and sibling in listed

    assert_error(
        await client.delete(f"/management/groups/{name}", headers=admin.headers), 404, 20041
    )
    recreated = await client.post(f"/management/groups/{name}", headers=admin.headers)
    assert recreated.json()["members"] == []


@pytest.mark.parametrize(
    ("group", "status", "code"),
    [
        ("globalusers", 400, 20040),
        ("{name}ro", 400, 20040),
        ("Bad", 400, 20040),
        ("{missing}", 404, 20041),
    ],
)
async def test_refused_group_deletions_change_nothing(
    client: httpx.AsyncClient, admin: TestUser, services: Any, group: str, status: int, code: int
) -> None:
    name = await create_group(client, admin)
    target = group.format(name=name, missing=group_name("nx"))

    async def state() -> tuple[Any, ...]:
        # globalusers itself is shared with concurrent test sessions: only its existence is
        # checked below; the tenant made here must be untouched either way.
        names = (name, name + "ro") if target == "globalusers" else (target, name, name + "ro")
        return (
            [await services.store.get_group(n) for n in names],
            [await policy_document(services, f"group-policy-{n}") for n in names],
            await db_rows(services, "SELECT 1 FROM tenant_metadata WHERE tenant_name=:t", t=name),
        )

    before = await state()
    response = await client.delete(f"/management/groups/{target}", headers=admin.headers)
    assert_error(response, status, code)
    assert await state() == before
    assert await services.store.get_group("globalusers") is not None
    assert await services.store.get_group("globalusers") is not None
