"""Issue 8, checked the way it was found: as users holding the issued keys and an S3 client.

1. policy variables in share paths; 2. write shares bounded by the owner's rights; 3. the
steward matrix; 4. managed users and adoption; 5. deletions that report what was not deleted;
8. truthful make-private and no raw store text in answers.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from botocore.exceptions import ClientError

from minio_manager.errors import DataNotDeleted
from minio_manager.objectstore.deletion import DeleteFailure
from minio_manager.objectstore.errors import StoreRejected
from minio_manager.objectstore.port import AccessKey
from tests.support.api import BUCKET, home_key, home_url, issue, post
from tests.support.governance import (
    assert_error,
    assign_steward,
    create_group,
    db_rows,
    delete_created_groups,
    group_name,
    members_of,
)
from tests.support.kbase import KBase, TestUser
from tests.support.s3 import S3User
from tests.support.store import list_keys, open_store


@pytest_asyncio.fixture(scope="module", autouse=True)
async def _delete_groups_afterwards(client: httpx.AsyncClient, kbase: KBase) -> AsyncIterator[None]:
    yield
    await delete_created_groups(client, kbase.add_user(admin=True))


def sql_key(user: TestUser, rest: str = "") -> str:
    return f"users-sql-warehouse/{user.name}/{rest}".rstrip("/")


def sql_url(user: TestUser, rest: str = "") -> str:
    return f"s3a://{BUCKET}/users-sql-warehouse/{user.name}/{rest}"


async def share(
    client: httpx.AsyncClient, owner: TestUser, path: str, users: list[str], permission: str
) -> httpx.Response:
    body = {"path": path, "with_users": users, "with_groups": [], "permission": permission}
    return await post(client, owner, "/sharing/share", body)


# -- 1. policy variables --------------------------------------------------------------------------
def _with_user_agent(s3: S3User, agent: str) -> S3User:
    """Send every request of ``s3`` with exactly ``agent`` as its User-Agent (not signed)."""

    def rewrite(request: Any, **_: Any) -> None:
        request.headers["User-Agent"] = agent

    s3.client.meta.events.register("before-send.s3", rewrite)
    return s3


@pytest.mark.parametrize(
    "suffix", ["p/${aws:UserAgent}", "p/${aws:UserAgent}/", "p/${aws:username}", "p/{x}", "p/$"]
)
async def test_share_path_with_a_policy_variable_is_refused(
    client: httpx.AsyncClient, kbase: KBase, suffix: str
) -> None:
    alice, bob = kbase.add_user(), kbase.add_user()
    alice_s3 = await issue(client, alice)
    bob_s3 = _with_user_agent(await issue(client, bob), "*")
    secret_key = home_key(alice, "p/secret.txt")
    assert alice_s3.can_put(BUCKET, secret_key, b"private")

    response = await share(client, alice, home_url(alice, suffix), [bob.name], "read")

    assert_error(response, 400, 20015)
    assert "'$', '{' and '}'" in response.json()["message"]
    # The attack of the report: with "User-Agent: *" the grantee would read all of p/.
    assert not bob_s3.can_get(BUCKET, secret_key)
    assert not bob_s3.can_list(BUCKET, home_key(alice, "p/"))


# -- 2. write shares never exceed the owner's rights -----------------------------------------------
async def test_write_share_of_sql_warehouse_writes_only_governed_databases(
    client: httpx.AsyncClient, kbase: KBase
) -> None:
    alice, bob = kbase.add_user(), kbase.add_user()
    alice_s3, bob_s3 = await issue(client, alice), await issue(client, bob)
    outside = sql_key(alice, "scratch/x.parquet")
    inside = sql_key(alice, f"u_{alice.name}__db/t/x.parquet")
    assert not alice_s3.can_put(BUCKET, outside)  # the owner's own limit
    assert alice_s3.can_put(BUCKET, inside)

    response = await share(client, alice, sql_url(alice), [bob.name], "write")
    assert response.status_code == 200, response.text

    assert not bob_s3.can_put(BUCKET, outside)
    assert not bob_s3.can_put(BUCKET, sql_key(alice, "u_alicex/x"))
    assert bob_s3.can_put(BUCKET, sql_key(alice, f"u_{alice.name}__db/t/y.parquet"))
    assert bob_s3.can_get(BUCKET, inside)
    assert bob_s3.can_list(BUCKET, sql_key(alice) + "/")


async def test_write_share_the_owner_cannot_write_is_refused(
    client: httpx.AsyncClient, kbase: KBase
) -> None:
    alice, bob = kbase.add_user(), kbase.add_user()
    await issue(client, alice)
    bob_s3 = await issue(client, bob)

    response = await share(client, alice, sql_url(alice, "scratch/"), [bob.name], "write")
    assert_error(response, 403, 20042)
    assert f"u_{alice.name}__" in response.json()["message"]
    assert not bob_s3.can_put(BUCKET, sql_key(alice, "scratch/x"))
    # Read of the same path, and write of a governed database, are fine.
    assert (
        await share(client, alice, sql_url(alice, "scratch/"), [bob.name], "read")
    ).status_code == 200
    db = sql_url(alice, f"u_{alice.name}__db/")
    assert (await share(client, alice, db, [bob.name], "write")).status_code == 200
    assert bob_s3.can_put(BUCKET, sql_key(alice, f"u_{alice.name}__db/x"))
    assert not bob_s3.can_put(BUCKET, sql_key(alice, "scratch/x"))


# -- 3. steward matrix ----------------------------------------------------------------------------
async def _member_call(
    client: httpx.AsyncClient, caller: TestUser, method: str, tenant: str, user: str, level: str
) -> httpx.Response:
    url = f"/tenants/{tenant}/members/{user}"
    if method == "POST":
        return await client.post(url, params={"permission": level}, headers=caller.headers)
    return await client.delete(url, headers=caller.headers)


@pytest_asyncio.fixture
async def tenant_world(client: httpx.AsyncClient, kbase: KBase, services: Any) -> dict[str, Any]:
    admin = kbase.add_user(admin=True)
    people = {n: kbase.add_user() for n in ("s1", "s2", "rw", "ro", "outsider", "fresh")}
    for person in (admin, *people.values()):
        await issue(client, person)
    tenant = await create_group(client, admin)
    await assign_steward(client, admin, tenant, people["s1"].name)
    await assign_steward(client, admin, tenant, people["s2"].name)
    for name, level in (("rw", "read_write"), ("ro", "read_only")):
        response = await _member_call(client, admin, "POST", tenant, people[name].name, level)
        assert response.status_code == 200, response.text
    return {"admin": admin, "tenant": tenant, **people}


async def _level(services: Any, tenant: str, user: str) -> str | None:
    if user in (await members_of(services, tenant) or set()):
        return "read_write"
    if user in (await members_of(services, tenant + "ro") or set()):
        return "read_only"
    return None


# (caller, method, target, level, expected status or (status, code), target's level afterwards)
STEWARD_MATRIX: list[tuple[str, str, str, str, Any, str | None]] = [
    # a steward manages members who are not stewards ...
    ("s1", "POST", "fresh", "read_only", 200, "read_only"),
    ("s1", "POST", "rw", "read_only", 200, "read_only"),
    ("s1", "POST", "ro", "read_write", 200, "read_write"),
    ("s1", "DELETE", "rw", "", 204, None),
    # ... but never a steward, themselves included
    ("s1", "POST", "s2", "read_only", (403, 40020), "read_write"),
    ("s1", "POST", "s2", "read_write", (403, 40020), "read_write"),
    ("s1", "DELETE", "s2", "", (403, 40020), "read_write"),
    ("s1", "POST", "s1", "read_only", (403, 40020), "read_write"),
    ("s1", "DELETE", "s1", "", (403, 40020), "read_write"),
    # members and outsiders manage nobody
    ("rw", "POST", "fresh", "read_write", (403, 40020), None),
    ("rw", "POST", "ro", "read_write", (403, 40020), "read_only"),
    ("rw", "DELETE", "ro", "", (403, 40020), "read_only"),
    ("rw", "POST", "rw", "read_only", (403, 40020), "read_write"),
    ("outsider", "POST", "fresh", "read_write", (403, 40020), None),
    ("outsider", "POST", "outsider", "read_write", (403, 40020), None),
    ("outsider", "DELETE", "rw", "", (403, 40020), "read_write"),
    # admins manage everyone
    ("admin", "POST", "s2", "read_only", 200, "read_only"),
    ("admin", "DELETE", "s2", "", 204, None),
    ("admin", "POST", "rw", "read_only", 200, "read_only"),
]


@pytest.mark.parametrize(
    ("caller", "method", "target", "level", "expected", "after"),
    STEWARD_MATRIX,
    ids=[f"{c}-{m}-{t}-{lv or 'remove'}" for c, m, t, lv, _, _ in STEWARD_MATRIX],
)
async def test_steward_matrix(
    client: httpx.AsyncClient,
    services: Any,
    tenant_world: dict[str, Any],
    caller: str,
    method: str,
    target: str,
    level: str,
    expected: Any,
    after: str | None,
) -> None:
    tenant = tenant_world["tenant"]
    user = tenant_world[target].name
    response = await _member_call(client, tenant_world[caller], method, tenant, user, level)
    if isinstance(expected, tuple):
        assert_error(response, *expected)
    else:
        assert response.status_code == expected, response.text
    assert await _level(services, tenant, user) == after
    stewards = {r[0] for r in await db_rows(
        services, "SELECT username FROM tenant_stewards WHERE tenant_name = :t", t=tenant
    )}  # fmt: skip
    assert tenant_world["s1"].name in stewards
    assert (tenant_world["s2"].name in stewards) == (
        not (caller == "admin" and target == "s2" and method == "DELETE")
    )


@pytest.mark.parametrize("caller", ["s1", "rw", "outsider"])
async def test_only_admins_assign_or_remove_stewards(
    client: httpx.AsyncClient, tenant_world: dict[str, Any], caller: str
) -> None:
    tenant, who = tenant_world["tenant"], tenant_world[caller]
    fresh, s2 = tenant_world["fresh"].name, tenant_world["s2"].name
    assert_error(
        await client.post(f"/tenants/{tenant}/stewards/{fresh}", headers=who.headers), 403, 10040
    )
    assert_error(
        await client.delete(f"/tenants/{tenant}/stewards/{s2}", headers=who.headers), 403, 10040
    )


# -- 4. managed users ------------------------------------------------------------------------------
def _secret_works(access_key: str, secret_key: str) -> bool:
    """Whether the store still accepts this pair (AccessDenied means it does: the signature
    was good, the request simply not allowed)."""
    s3 = S3User(access_key, secret_key)
    try:
        s3.client.list_objects_v2(Bucket=BUCKET, Prefix="nothing-here/")
    except ClientError as exc:
        return str(exc.response.get("Error", {}).get("Code")) not in {
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
        }
    return True


@pytest_asyncio.fixture
async def foreign(kbase: KBase, services: Any) -> AsyncIterator[tuple[TestUser, AccessKey]]:
    """A store user made outside the service (as an operator would) and a KBase user of the
    same name."""
    name = f"svc{secrets.token_hex(5)}"
    secret = secrets.token_urlsafe(30)
    pair = await services.store.set_user(name, secret)
    yield kbase.add_user(name), pair
    await services.store.delete_user(name)


async def test_login_does_not_take_over_a_store_user_the_service_did_not_create(
    client: httpx.AsyncClient, kbase: KBase, services: Any, foreign: tuple[TestUser, AccessKey]
) -> None:
    user, pair = foreign
    admin = kbase.add_user(admin=True)
    calls = [
        client.get("/credentials/", headers=user.headers),
        client.post("/credentials/rotate", headers=user.headers),
        client.post(f"/management/users/{user.name}", headers=admin.headers),
        client.post(f"/management/users/{user.name}/rotate-credentials", headers=admin.headers),
    ]
    for call in calls:
        response = await call
        assert_error(response, 409, 20032)
        message = response.json()["message"]
        assert f"/management/users/{user.name}/adopt" in message
        assert pair.secret_key not in response.text
    assert _secret_works(pair.access_key, pair.secret_key)
    assert (
        await db_rows(services, "SELECT 1 FROM user_credentials WHERE username = :u", u=user.name)
        == []
    )
    # The store user is as it was: no policies attached, no group joined.
    found = await services.store.get_user(user.name)
    assert found is not None and found.policies == () and found.groups == ()


async def test_admin_adopts_a_store_user_then_logins_work(
    client: httpx.AsyncClient, kbase: KBase, services: Any, foreign: tuple[TestUser, AccessKey]
) -> None:
    user, old = foreign
    admin = kbase.add_user(admin=True)
    assert_error(
        await client.post(f"/management/users/{user.name}/adopt", headers=user.headers), 403, 10040
    )
    assert_error(
        await client.post("/management/users/nosuchuser42/adopt", headers=admin.headers),
        404,
        20031,
    )

    response = await client.post(f"/management/users/{user.name}/adopt", headers=admin.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["adopted"] is True and body["source"] == "adopted"
    assert body["adopted_by"] == admin.name
    again = await client.post(f"/management/users/{user.name}/adopt", headers=admin.headers)
    assert again.status_code == 200 and again.json()["adopted"] is False
    rows = await db_rows(
        services,
        "SELECT actor FROM audit_log WHERE action = 'user.adopt' AND target = :u",
        u=user.name,
    )
    assert rows == [(admin.name,)]

    s3 = await issue(client, user)
    assert s3.can_put(BUCKET, home_key(user, "data/x"))
    assert not _secret_works(old.access_key, old.secret_key)


async def test_provisioned_users_are_recorded_and_forgotten_on_delete(
    client: httpx.AsyncClient, kbase: KBase, services: Any
) -> None:
    user, admin = kbase.add_user(), kbase.add_user(admin=True)
    await issue(client, user)
    sql = "SELECT source FROM managed_users WHERE username = :u"
    assert await db_rows(services, sql, u=user.name) == [("provisioned",)]
    response = await client.delete(f"/management/users/{user.name}", headers=admin.headers)
    assert response.status_code == 200, response.text
    assert await db_rows(services, sql, u=user.name) == []


# -- 5. deletions report what was not deleted ------------------------------------------------------
async def test_delete_prefix_reports_objects_the_store_refused_to_delete(
    client: httpx.AsyncClient, kbase: KBase
) -> None:
    """A real failing DeleteObjects: the adapter runs with the keys of a user who may list a
    prefix (a read share) but not delete in it, so MinIO answers 200 with one AccessDenied
    ``<Error>`` per key."""
    alice, bob = kbase.add_user(), kbase.add_user()
    alice_s3, bob_s3 = await issue(client, alice), await issue(client, bob)
    keys = [home_key(alice, f"held/{n}.txt") for n in range(3)]
    for key in keys:
        assert alice_s3.can_put(BUCKET, key)
    assert (
        await share(client, alice, home_url(alice, "held/"), [bob.name], "read")
    ).status_code == 200
    creds = bob_s3.client._request_signer._credentials  # the pair issued to bob
    store = open_store(None, creds.access_key, creds.secret_key)
    try:
        with pytest.raises(DataNotDeleted) as info:
            await store.delete_prefix(BUCKET, home_key(alice, "held") + "/")
    finally:
        await store.close()
    assert info.value.status == 409 and info.value.code == 20053
    assert "3 objects" in info.value.message and "AccessDenied" in info.value.message
    assert sorted(alice_s3.list_keys(BUCKET, home_key(alice, "held/"))) == sorted(keys)


async def test_user_deletion_fails_and_resumes_when_data_remains(
    client: httpx.AsyncClient,
    kbase: KBase,
    services: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store refuses one key (injected into the real DeleteObjects answer, the only step
    not done by MinIO itself): the call fails with 409 and the user stays, so the admin can
    repeat it; the repeat finishes the job."""
    user, admin = kbase.add_user(), kbase.add_user(admin=True)
    s3 = await issue(client, user)
    stuck = home_key(user, "data/stuck.bin")
    assert s3.can_put(BUCKET, stuck)
    adapter = services.membership._raw  # the adapter behind the membership cache
    minio = getattr(adapter, "_data", adapter)  # the AWS-IAM adapter's S3 part has the batch
    real_batch = minio._delete_batch

    async def refuse_stuck(bucket: str, keys: list[str]) -> list[DeleteFailure]:
        failures = await real_batch(bucket, [k for k in keys if k != stuck])
        if stuck in keys:
            failures.append(DeleteFailure(stuck, "AccessDenied", "raw store text 1234"))
        return failures

    monkeypatch.setattr(minio, "_delete_batch", refuse_stuck)
    response = await client.delete(f"/management/users/{user.name}", headers=admin.headers)
    assert_error(response, 409, 20053)
    assert "raw store text 1234" not in response.text
    assert "repeat" in response.json()["message"]
    assert await services.store.get_user(user.name) is not None
    assert await list_keys(BUCKET, home_key(user) + "/") == [stuck]

    monkeypatch.setattr(minio, "_delete_batch", real_batch)
    response = await client.delete(f"/management/users/{user.name}", headers=admin.headers)
    assert response.status_code == 200, response.text
    assert await services.store.get_user(user.name) is None
    assert await list_keys(BUCKET, home_key(user) + "/") == []


# -- 8. truthful make-private, no raw store text ---------------------------------------------------
async def test_make_private_under_a_public_parent_says_it_is_still_public(
    client: httpx.AsyncClient, kbase: KBase
) -> None:
    alice, bob = kbase.add_user(), kbase.add_user()
    alice_s3, bob_s3 = await issue(client, alice), await issue(client, bob)
    key = home_key(alice, "pub/sub/x.txt")
    assert alice_s3.can_put(BUCKET, key)
    response = await post(client, alice, "/sharing/make-public", {"path": home_url(alice, "pub")})
    assert response.status_code == 200, response.text

    response = await post(
        client, alice, "/sharing/make-private", {"path": home_url(alice, "pub/sub")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["path"], body["is_public"], body["public_via"]) == (
        home_url(alice, "pub/sub/"),
        True,
        [home_url(alice, "pub/")],
    )
    assert bob_s3.can_get(BUCKET, key)  # the answer tells the truth

    response = await post(client, alice, "/sharing/make-private", {"path": home_url(alice, "pub")})
    body = response.json()
    assert (body["path"], body["is_public"], body["public_via"]) == (
        home_url(alice, "pub/"),
        False,
        [],
    )
    assert not bob_s3.can_get(BUCKET, key)


async def test_store_refusal_text_is_not_returned(client: httpx.AsyncClient, kbase: KBase) -> None:
    """MinIO refuses 2-character access keys; the caller gets our words and the store's code
    class, never the store's message."""
    admin = kbase.add_user(admin=True)
    response = await client.post("/management/users/ab", headers=admin.headers)
    assert_error(response, 400, 20030)
    message = response.json()["message"]
    assert "at least 3 characters" in message
    assert "access key is invalid" not in message.lower()


async def test_unexpected_store_refusal_answers_the_code_not_the_text(
    client: httpx.AsyncClient, kbase: KBase, services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal nobody expected becomes 502 / 20051 with MinIO's error code; its message (which
    may name internals) is only logged."""
    admin = kbase.add_user(admin=True)
    minio = services.membership._raw

    async def refuse(group: str) -> None:
        raise StoreRejected(400, "XMinioAdminSomethingOdd", "raw internals /data/disk1 42")

    monkeypatch.setattr(minio, "get_group", refuse)
    response = await client.post(f"/management/groups/{group_name()}", headers=admin.headers)
    assert_error(response, 502, 20051)
    assert "XMinioAdminSomethingOdd" in response.json()["message"]
    assert "raw internals" not in response.text
