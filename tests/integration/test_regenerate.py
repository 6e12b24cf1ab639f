"""Regenerate-policies and the drift report: policies are a projection of the share records."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx
import pytest
from sqlalchemy import insert

from minio_manager.db.tables import shares
from minio_manager.governance.policies import canonical_document
from tests.support.api import BUCKET, home_key, home_url, issue, post
from tests.support.kbase import KBase, TestUser
from tests.support.s3 import S3User

TEMPLATE_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation"],
            "Resource": [f"arn:aws:s3:::{BUCKET}"],
        }
    ],
}

READ_WRITE_ALL = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:*"],
            "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
        }
    ],
}


async def regenerate(client: httpx.AsyncClient, admin: TestUser) -> dict[str, Any]:
    response = await client.post("/management/migrate/regenerate-policies", headers=admin.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def drift(client: httpx.AsyncClient, admin: TestUser) -> dict[str, list[str]]:
    response = await client.get("/management/migrate/policy-drift", headers=admin.headers)
    assert response.status_code == 200, response.text
    return {
        f"{d['resource_type']}:{d['resource_name']}": d["problems"]
        for d in response.json()["drifted"]
    }


async def share(
    client: httpx.AsyncClient, owner: TestUser, rest: str, body: dict[str, Any]
) -> None:
    response = await post(client, owner, "/sharing/share", {"path": home_url(owner, rest), **body})
    assert response.status_code == 200, response.text


async def test_regenerate_repairs_every_kind_of_drift_and_keeps_shares(
    client: httpx.AsyncClient, kbase: KBase, services: Any, admin: TestUser
) -> None:
    alice, bob, carol, dave = (kbase.add_user() for _ in range(4))
    s3 = {u.name: await issue(client, u) for u in (alice, bob, carol, dave)}
    group = "g" + secrets.token_hex(5)
    await services.groups.ensure_group(group, [carol.name])
    await services.store.add_group_members(f"{group}ro", [dave.name])
    keys = {
        rest: home_key(alice, rest)
        for rest in ("data/to-bob/f", "data/to-group/f", "data/to-twin/f")
    }
    for key in keys.values():
        assert s3[alice.name].can_put(BUCKET, key)
    await share(client, alice, "data/to-bob", {"with_users": [bob.name], "permission": "read"})
    await share(client, alice, "data/to-group", {"with_groups": [group]})
    await share(
        client, alice, "data/to-twin", {"with_groups": [f"{group}ro"], "permission": "read"}
    )
    ours = {f"user:{bob.name}", f"group:{group}", f"group:{group}ro"}
    assert ours.isdisjoint(await drift(client, admin))

    # Three kinds of damage done behind the service's back.
    store = services.store
    await store.put_policy(f"user-home-policy-{bob.name}", TEMPLATE_ONLY)
    assert not s3[bob.name].can_get(BUCKET, keys["data/to-bob/f"])
    # A policy of no principal of the service's, granting everything in the bucket (MinIO's
    # canned "readwrite" would do, but other stores have no such policy).
    planted = "planted-rw-" + secrets.token_hex(4)
    await store.put_policy(planted, READ_WRITE_ALL)
    await store.set_user_policies(
        bob.name, [f"user-home-policy-{bob.name}", f"user-system-policy-{bob.name}", planted]
    )
    assert s3[bob.name].can_put(BUCKET, home_key(dave, "data/planted"))  # read-write all!
    await store.set_group_policies(group, [])
    await store.set_group_policies(f"{group}ro", [])
    await store.delete_policy(f"group-policy-{group}ro")
    assert not s3[carol.name].can_put(BUCKET, home_key(alice, "data/to-group/x"))
    assert not s3[dave.name].can_get(BUCKET, keys["data/to-twin/f"])

    found = await drift(client, admin)
    assert (
        f"policy user-home-policy-{bob.name} differs from its records" in found[f"user:{bob.name}"]
    )
    assert f"unexpected policy {planted} is attached" in found[f"user:{bob.name}"]
    assert found[f"group:{group}"] == [f"policy group-policy-{group} is not attached"]
    assert f"policy group-policy-{group}ro is missing" in found[f"group:{group}ro"]

    async with services.engine.connect() as conn:
        before = (await conn.execute(shares.select().where(shares.c.owner == alice.name))).all()
    report = await regenerate(client, admin)
    assert report["performed_by"] == admin.name
    assert report["users_updated"] >= 4 and report["groups_updated"] >= 2
    failed = {f"{e['resource_type']}:{e['resource_name']}" for e in report["errors"]}
    assert failed.isdisjoint(ours | {f"user:{u.name}" for u in (alice, carol, dave)})

    assert s3[bob.name].can_get(BUCKET, keys["data/to-bob/f"])
    assert not s3[bob.name].can_put(BUCKET, home_key(dave, "data/planted-again"))
    assert s3[carol.name].can_put(BUCKET, home_key(alice, "data/to-group/x"))
    assert s3[dave.name].can_get(BUCKET, keys["data/to-twin/f"])
    assert not s3[dave.name].can_put(BUCKET, home_key(alice, "data/to-twin/x"))
    assert ours.isdisjoint(await drift(client, admin))
    async with services.engine.connect() as conn:
        after = (await conn.execute(shares.select().where(shares.c.owner == alice.name))).all()
    assert after == before
    await store.delete_policy(planted)


async def test_regenerate_renders_records_it_never_saw_applied(
    client: httpx.AsyncClient, kbase: KBase, services: Any, admin: TestUser
) -> None:
    """Records restored straight into PostgreSQL (say, from a backup) become policies."""
    alice, bob = kbase.add_user(), kbase.add_user()
    s3_alice, s3_bob = await issue(client, alice), await issue(client, bob)
    count = 120
    keys = [home_key(alice, f"data/restored/d{n:03d}") for n in range(count)]
    assert s3_alice.can_put(BUCKET, keys[0] + "/f") and s3_alice.can_put(BUCKET, keys[-1] + "/f")
    async with services.engine.begin() as conn:
        await conn.execute(
            insert(shares),
            [
                {
                    "owner": alice.name,
                    "bucket": BUCKET,
                    "key": key,
                    "target_type": "user",
                    "target_name": bob.name,
                    "level": "write",
                    "created_by": alice.name,
                }
                for key in keys
            ],
        )
    assert not s3_bob.can_get(BUCKET, keys[-1] + "/f")
    assert f"user:{bob.name}" in await drift(client, admin)

    await regenerate(client, admin)
    assert s3_bob.can_get(BUCKET, keys[0] + "/f") and s3_bob.can_get(BUCKET, keys[-1] + "/f")
    attached = (await services.store.get_user(bob.name)).policies
    assert f"user-home-policy-{bob.name}--2" in attached
    assert f"user:{bob.name}" not in await drift(client, admin)

    # Idempotent: a second run writes the same documents.
    names = sorted(attached)
    first = [canonical_document(await services.store.get_policy(n)) for n in names]
    await regenerate(client, admin)
    assert sorted((await services.store.get_user(bob.name)).policies) == names
    assert [canonical_document(await services.store.get_policy(n)) for n in names] == first


async def test_regenerate_writes_only_what_the_store_lacks_and_repairs_behind_our_record(
    client: httpx.AsyncClient,
    kbase: KBase,
    services: Any,
    admin: TestUser,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regenerate reads each document back and writes only those that differ from the render.

    The document damaged here is one the service's own record (``policy_documents``) still
    calls written and clean: a skip decided from that record would leave the damage in place.
    """
    alice, bob = kbase.add_user(), kbase.add_user()
    s3_alice, s3_bob = await issue(client, alice), await issue(client, bob)
    keys = [home_key(alice, f"data/many/d{n:03d}") for n in range(120)]
    assert s3_alice.can_put(BUCKET, keys[0] + "/f") and s3_alice.can_put(BUCKET, keys[-1] + "/f")
    async with services.engine.begin() as conn:
        await conn.execute(
            insert(shares),
            [
                {
                    "owner": alice.name,
                    "bucket": BUCKET,
                    "key": key,
                    "target_type": "user",
                    "target_name": bob.name,
                    "level": "read",
                    "created_by": alice.name,
                }
                for key in keys
            ],
        )
    await regenerate(client, admin)  # renders the rows: bob now holds two home documents
    home, overflow = f"user-home-policy-{bob.name}", f"user-home-policy-{bob.name}--2"
    assert overflow in (await services.store.get_user(bob.name)).policies

    store = services.store
    put_policy, set_user_policies = store.put_policy, store.set_user_policies
    puts: list[str] = []
    attaches: list[str] = []

    async def counting_put(name: str, document: dict[str, Any]) -> None:
        puts.append(name)
        await put_policy(name, document)

    async def counting_attach(user: str, names: Any) -> None:
        attaches.append(user)
        await set_user_policies(user, names)

    monkeypatch.setattr(store, "put_policy", counting_put)
    monkeypatch.setattr(store, "set_user_policies", counting_attach)
    ours = {home, overflow, f"user-system-policy-{bob.name}"}

    await regenerate(client, admin)  # the store agrees: nothing of bob's is written
    assert ours.isdisjoint(puts) and bob.name not in attaches

    # Which document holds the last key depends on placement: damage that one only.
    holders = [
        name
        for name in (home, overflow)
        if f"{keys[-1]}/*" in json.dumps(await store.get_policy(name))
    ]
    assert len(holders) == 1
    holder = holders[0]
    await put_policy(holder, TEMPLATE_ONLY)
    assert not s3_bob.can_get(BUCKET, keys[-1] + "/f")
    puts.clear()
    await regenerate(client, admin)
    assert [n for n in puts if n in ours] == [holder]
    assert bob.name not in attaches
    assert s3_bob.can_get(BUCKET, keys[-1] + "/f") and s3_bob.can_get(BUCKET, keys[0] + "/f")
    assert f"user:{bob.name}" not in await drift(client, admin)


async def test_principals_missing_from_the_store_are_reported_not_created(
    client: httpx.AsyncClient, kbase: KBase, services: Any, admin: TestUser
) -> None:
    ghost, alive = kbase.add_user(), kbase.add_user()
    await issue(client, ghost)
    s3_alive: S3User = await issue(client, alive)
    await services.store.delete_user(ghost.name)
    await services.store.put_policy(f"user-home-policy-{alive.name}", TEMPLATE_ONLY)
    try:
        report = await regenerate(client, admin)
        errors = {(e["resource_type"], e["resource_name"]): e["error"] for e in report["errors"]}
        assert ("user", ghost.name) in errors
        assert "absent from the object store" in errors[("user", ghost.name)]
        assert report["users_updated"] < report["users_total"]  # the ghost is not "updated"
        assert await services.store.get_user(ghost.name) is None
        found = await client.get("/management/migrate/policy-drift", headers=admin.headers)
        assert found.status_code == 200, found.text
        drift_errors = {
            (e["resource_type"], e["resource_name"]): e["error"] for e in found.json()["errors"]
        }
        assert "absent from the object store" in drift_errors[("user", ghost.name)]
        assert ghost.name not in {d["resource_name"] for d in found.json()["drifted"]}
        assert s3_alive.can_put(BUCKET, home_key(alive, "data/ok"))
    finally:
        await services.credentials.forget(ghost.name)


async def test_regenerate_and_drift_are_admin_only(
    client: httpx.AsyncClient, user: TestUser
) -> None:
    for method, url in (
        ("POST", "/management/migrate/regenerate-policies"),
        ("GET", "/management/migrate/policy-drift"),
    ):
        response = await client.request(method, url, headers=user.headers)
        assert response.status_code == 403, response.text
        assert response.json()["error"] == 10040
        response = await client.request(method, url)
        assert response.status_code == 401
