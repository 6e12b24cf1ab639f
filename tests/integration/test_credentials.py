"""GET /credentials/ and rotation on the real stack, checked with an S3 client."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import text

from tests.support.kbase import KBase, TestUser
from tests.support.s3 import S3User
from tests.support.store import store_access_key

BUCKET = "cdm-lake"


async def issue(client: httpx.AsyncClient, user: TestUser) -> S3User:
    response = await client.get("/credentials/", headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["username"] == user.name
    assert body["access_key"] == await store_access_key(user.name)
    assert len(body["secret_key"]) == 40
    # Clients of both eras: the s3_* names carry the same pair.
    assert (body["s3_access_key"], body["s3_secret_key"]) == (
        body["access_key"],
        body["secret_key"],
    )
    return S3User(body["access_key"], body["secret_key"])


async def test_user_home_is_enforced(client: httpx.AsyncClient, kbase: KBase) -> None:
    alice = kbase.add_user()
    s3 = await issue(client, alice)
    for home in (f"users-general-warehouse/{alice.name}", f"users-sql-warehouse/{alice.name}"):
        key = f"{home}/u_{alice.name}__db/t.parquet"
        if home.startswith("users-general"):
            key = f"{home}/data/file.txt"
        assert s3.can_put(BUCKET, key)
        assert s3.can_get(BUCKET, key)
        assert s3.can_list(BUCKET, f"{home}/")
        assert key in s3.list_keys(BUCKET, f"{home}/")
        assert s3.can_delete(BUCKET, key)
    sql = f"users-sql-warehouse/{alice.name}"
    assert not s3.can_put(BUCKET, f"{sql}/other_db/t.parquet")
    assert not s3.can_put(BUCKET, f"{sql}/loose.txt")
    assert s3.can_get(BUCKET, f"{sql}/.s3keep")
    assert s3.can_put("cdm-spark-job-logs", f"spark-job-logs/{alice.name}/app.log")
    assert not s3.can_put("cdm-spark-job-logs", "spark-job-logs/someoneelse/app.log")


async def test_other_users_and_sibling_prefixes_are_denied(
    client: httpx.AsyncClient, kbase: KBase
) -> None:
    base = f"s{uuid.uuid4().hex[:8]}"
    alice, sibling = kbase.add_user(base), kbase.add_user(base + "x")
    s3_alice = await issue(client, alice)
    s3_sibling = await issue(client, sibling)
    theirs = f"users-general-warehouse/{sibling.name}"
    assert s3_sibling.can_put(BUCKET, f"{theirs}/secret.txt")
    assert not s3_alice.can_get(BUCKET, f"{theirs}/secret.txt")
    assert not s3_alice.can_list(BUCKET, f"{theirs}/")
    assert not s3_alice.can_put(BUCKET, f"{theirs}/planted.txt")
    assert not s3_alice.can_delete(BUCKET, f"{theirs}/secret.txt")
    assert not s3_alice.can_list(BUCKET, f"users-sql-warehouse/{sibling.name}/")


async def test_markers_and_readme_exist(client: httpx.AsyncClient, kbase: KBase) -> None:
    bob = kbase.add_user()
    s3 = await issue(client, bob)
    keys = s3.list_keys(BUCKET, f"users-general-warehouse/{bob.name}/")
    general = f"users-general-warehouse/{bob.name}"
    for expected in (
        ".s3keep",
        "README.txt",
        "data/.s3keep",
        "notebooks/.s3keep",
        "shared/.s3keep",
    ):
        assert f"{general}/{expected}" in keys
    assert f"users-sql-warehouse/{bob.name}/.s3keep" in s3.list_keys(
        BUCKET, f"users-sql-warehouse/{bob.name}/"
    )


async def test_second_call_same_pair_rotation_replaces_it(
    client: httpx.AsyncClient, kbase: KBase, services: object
) -> None:
    carol = kbase.add_user()
    first = (await client.get("/credentials/", headers=carol.headers)).json()
    second = (await client.get("/credentials/", headers=carol.headers)).json()
    assert first == second
    rotated = (await client.post("/credentials/rotate", headers=carol.headers)).json()
    assert rotated["access_key"] == await store_access_key(carol.name)
    assert (rotated["s3_access_key"], rotated["s3_secret_key"]) == (
        rotated["access_key"], rotated["secret_key"],
    )  # fmt: skip
    assert rotated["secret_key"] != first["secret_key"]
    old = S3User(first["access_key"], first["secret_key"])
    new = S3User(rotated["access_key"], rotated["secret_key"])
    key = f"users-general-warehouse/{carol.name}/data/x.txt"
    assert not old.can_put(BUCKET, key)
    assert new.can_put(BUCKET, key)
    assert (await client.get("/credentials/", headers=carol.headers)).json() == rotated

    engine = services.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT secret_key FROM user_credentials WHERE username = :u"),
                {"u": carol.name},
            )
        ).scalar_one()
    assert rotated["secret_key"].encode() not in bytes(stored)
    assert bytes(stored)[:1] != rotated["secret_key"][:1].encode() or len(stored) > 60


async def test_ten_simultaneous_first_calls_share_one_pair(
    client: httpx.AsyncClient, kbase: KBase
) -> None:
    dave = kbase.add_user()
    responses = await asyncio.gather(
        *(client.get("/credentials/", headers=dave.headers) for _ in range(10))
    )
    assert [r.status_code for r in responses] == [200] * 10
    pairs = {(r.json()["access_key"], r.json()["secret_key"]) for r in responses}
    assert len(pairs) == 1
    access, secret = pairs.pop()
    assert S3User(access, secret).can_put(BUCKET, f"users-general-warehouse/{dave.name}/a.txt")


async def test_trailing_slash_redirect(client: httpx.AsyncClient, user: TestUser) -> None:
    response = await client.get("/credentials", headers=user.headers)
    assert response.status_code == 307
    assert response.headers["location"].endswith("/credentials/")


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, 10010),
        ({"Authorization": ""}, 401, 10010),
        ({"Authorization": "Basic abc"}, 401, 10030),
        ({"Authorization": "Bearer"}, 401, 10030),
        ({"Authorization": "Bearer a b"}, 401, 10030),
        ({"Authorization": "Bearer not-a-real-token"}, 401, 10020),
    ],
)
async def test_auth_failures(
    client: httpx.AsyncClient, headers: dict[str, str], status: int, code: int
) -> None:
    response = await client.get("/credentials/", headers=headers)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == code
    assert set(body) == {"error", "error_type", "message"}


async def test_scheme_is_case_insensitive(client: httpx.AsyncClient, user: TestUser) -> None:
    response = await client.get("/credentials/", headers={"Authorization": f"bEaReR {user.token}"})
    assert response.status_code == 200


async def test_missing_role_is_403(client: httpx.AsyncClient, kbase: KBase) -> None:
    nobody = kbase.add_user(roles=())
    response = await client.get("/credentials/", headers=nobody.headers)
    assert response.status_code == 403
    assert response.json()["error"] == 10040


async def test_expired_and_disabled_tokens(client: httpx.AsyncClient, kbase: KBase) -> None:
    expired = kbase.add_user(expires_in_ms=-1000)
    response = await client.get("/credentials/", headers=expired.headers)
    assert (response.status_code, response.json()["error"]) == (401, 10020)
    disabled = kbase.add_user()
    kbase.disable(disabled.name)
    response = await client.get("/credentials/", headers=disabled.headers)
    assert (response.status_code, response.json()["error"]) == (401, 10020)


@pytest.mark.parametrize("mode", ["error500", "html502"])
async def test_auth_service_down_is_503(client: httpx.AsyncClient, kbase: KBase, mode: str) -> None:
    fresh = kbase.add_user()
    kbase.mode(mode)
    try:
        response = await client.get("/credentials/", headers=fresh.headers)
    finally:
        kbase.mode("normal")
    assert response.status_code == 503
    assert response.json()["error"] == 50010
    assert (await client.get("/credentials/", headers=fresh.headers)).status_code == 200


async def test_auth_lookups_are_cached(client: httpx.AsyncClient, kbase: KBase) -> None:
    eve = kbase.add_user()
    before = kbase.stats()["me"]
    for _ in range(5):
        assert (await client.get("/credentials/", headers=eve.headers)).status_code == 200
    assert kbase.stats()["me"] - before == 1


async def test_profile_captured_from_me(
    client: httpx.AsyncClient, kbase: KBase, services: object
) -> None:
    frank = kbase.add_user(email="frank@lab.example")
    assert (await client.get("/credentials/", headers=frank.headers)).status_code == 200
    engine = services.engine  # type: ignore[attr-defined]
    async with engine.connect() as conn:
        email = (
            await conn.execute(
                text("SELECT email FROM user_profiles WHERE username = :u"), {"u": frank.name}
            )
        ).scalar_one()
    assert email == "frank@lab.example"


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["dependencies"] == {
        "database": "ok",
        "redis": "ok",
        "object_store": "ok",
        "auth": "ok",
    }
