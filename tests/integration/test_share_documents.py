"""Only the policy documents a change affects are written, and the store still enforces exactly
the records: one new share to a principal holding hundreds writes one document, an unshare
one, overflow documents past 20 KiB keep working, and regenerate repairs what was skipped."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import delete, insert

from minio_manager.db.tables import shares
from minio_manager.governance.policies import grants_from_document
from minio_manager.provisioning import documents
from tests.support.api import BUCKET, home_key, home_url, issue, post
from tests.support.kbase import KBase, TestUser
from tests.support.s3 import S3User

HELD = 300
"""Enough grants to spill over several 20 KiB documents."""


class Calls:
    """Store writes of one principal, counted by wrapping the in-process store."""

    def __init__(self, services: Any, monkeypatch: pytest.MonkeyPatch, user: str) -> None:
        self.puts: list[str] = []
        self.attaches: list[list[str]] = []
        store = services.store
        put_policy, set_user_policies = store.put_policy, store.set_user_policies
        ours = (f"user-home-policy-{user}", f"user-system-policy-{user}")

        async def counting_put(name: str, document: Any) -> None:
            if name.startswith(ours):
                self.puts.append(name)
            await put_policy(name, document)

        async def counting_attach(name: str, names: list[str]) -> None:
            if name == user:
                self.attaches.append(list(names))
            await set_user_policies(name, names)

        monkeypatch.setattr(store, "put_policy", counting_put)
        monkeypatch.setattr(store, "set_user_policies", counting_attach)

    def reset(self) -> None:
        self.puts.clear()
        self.attaches.clear()


async def seed(services: Any, owner: TestUser, grantee: TestUser, count: int) -> None:
    """Records inserted straight into PostgreSQL (rendered by the next change of ``grantee``)."""
    async with services.engine.begin() as conn:
        await conn.execute(
            insert(shares),
            [
                {
                    "owner": owner.name,
                    "bucket": BUCKET,
                    "key": home_key(owner, f"data/bulk/d{n:04d}"),
                    "target_type": "user",
                    "target_name": grantee.name,
                    "level": "read",
                    "created_by": owner.name,
                }
                for n in range(count)
            ],
        )


async def share(client: httpx.AsyncClient, owner: TestUser, rest: str, grantee: str) -> None:
    body = {"path": home_url(owner, rest), "with_users": [grantee], "permission": "read"}
    response = await post(client, owner, "/sharing/share", body)
    assert response.status_code == 200, response.text
    assert response.json()["enforcement"] == "applied"


async def unshare(client: httpx.AsyncClient, owner: TestUser, rest: str, grantee: str) -> None:
    body = {"path": home_url(owner, rest), "from_users": [grantee]}
    response = await post(client, owner, "/sharing/unshare", body)
    assert response.status_code == 200, response.text
    assert response.json()["enforcement"] == "applied"


async def holder_of(services: Any, user: str, key: str) -> str:
    """The attached home document that grants ``key``."""
    info = await services.store.get_user(user)
    for name in info.policies:
        if name.startswith(f"user-home-policy-{user}"):
            document = await services.store.get_policy(name)
            if any(g.key == key for g in grants_from_document(document or {})):
                return str(name)
    raise AssertionError(f"no attached document grants {key}")


async def pair(
    client: httpx.AsyncClient, kbase: KBase
) -> tuple[TestUser, S3User, TestUser, S3User]:
    alice, bob = kbase.add_user(), kbase.add_user()
    return alice, await issue(client, alice), bob, await issue(client, bob)


async def test_one_share_or_unshare_writes_one_document_and_is_enforced(
    client: httpx.AsyncClient, kbase: KBase, services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, alice_s3, bob, bob_s3 = await pair(client, kbase)
    first, last = (
        home_key(alice, "data/bulk/d0000/f"),
        home_key(alice, f"data/bulk/d{HELD - 1:04d}/f"),
    )
    new = home_key(alice, "data/fresh/f")
    for key in (first, last, new):
        assert alice_s3.can_put(BUCKET, key)
    await seed(services, alice, bob, HELD)
    await share(client, alice, "data/bulk/render-all", bob.name)  # renders all HELD records
    home = f"user-home-policy-{bob.name}"
    attached = (await services.store.get_user(bob.name)).policies
    assert len([n for n in attached if n.startswith(home + "--")]) >= 2, attached
    # Grants in an overflow document past the first 20 KiB are enforced.
    assert (
        await holder_of(services, bob.name, home_key(alice, f"data/bulk/d{HELD - 1:04d}"))
    ) != home
    assert bob_s3.can_get(BUCKET, first) and bob_s3.can_get(BUCKET, last)
    assert not bob_s3.can_get(BUCKET, new)

    calls = Calls(services, monkeypatch, bob.name)
    await share(client, alice, "data/fresh", bob.name)
    assert len(calls.puts) == 1, calls.puts
    assert calls.puts == [await holder_of(services, bob.name, home_key(alice, "data/fresh"))]
    assert calls.attaches == []
    assert bob_s3.can_get(BUCKET, new)
    assert bob_s3.can_get(BUCKET, first) and bob_s3.can_get(BUCKET, last)

    calls.reset()
    await unshare(client, alice, "data/bulk/d0000", bob.name)
    assert len(calls.puts) == 1, calls.puts
    assert calls.attaches == []
    assert not bob_s3.can_get(BUCKET, first)
    assert bob_s3.can_get(BUCKET, new) and bob_s3.can_get(BUCKET, last)

    calls.reset()
    await unshare(client, alice, "data/fresh", bob.name)
    assert len(calls.puts) == 1, calls.puts
    assert not bob_s3.can_get(BUCKET, new)
    assert bob_s3.can_get(BUCKET, last)
    # Own home untouched by all that.
    assert bob_s3.can_put(BUCKET, f"users-general-warehouse/{bob.name}/data/ok")


async def test_emptied_overflow_document_is_detached_and_deleted(
    client: httpx.AsyncClient, kbase: KBase, services: Any
) -> None:
    alice, alice_s3, bob, bob_s3 = await pair(client, kbase)
    await seed(services, alice, bob, HELD)
    await share(client, alice, "data/bulk/render-all", bob.name)
    home = f"user-home-policy-{bob.name}"
    before = (await services.store.get_user(bob.name)).policies
    last_document = max(
        (n for n in before if n.startswith(home + "--")), key=lambda n: int(n.rsplit("--", 1)[1])
    )
    document = await services.store.get_policy(last_document)
    keys = [g.key for g in grants_from_document(document or {})]
    assert keys
    async with services.engine.begin() as conn:
        await conn.execute(delete(shares).where(shares.c.key.in_(keys[1:])))
    await unshare(client, alice, keys[0].removeprefix(home_key(alice) + "/"), bob.name)

    after = (await services.store.get_user(bob.name)).policies
    assert last_document not in after
    assert await services.store.get_policy(last_document) is None
    assert len(after) == len(before) - 1
    probe = f"{keys[0]}/f"
    assert alice_s3.can_put(BUCKET, probe)
    assert not bob_s3.can_get(BUCKET, probe)


async def test_a_write_whose_transaction_failed_is_not_trusted_later(
    client: httpx.AsyncClient, kbase: KBase, services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store took a document, then the converge transaction failed: the saved placement
    still says the old grants. If the grant is revoked before the retry, the old placement
    equals the new one, yet the document must be written again (it holds the revoked grant)."""
    alice, alice_s3, bob, bob_s3 = await pair(client, kbase)
    await share(client, alice, "data/kept", bob.name)
    key = home_key(alice, "data/lost")
    assert alice_s3.can_put(BUCKET, f"{key}/f")
    async with services.engine.begin() as conn:
        await conn.execute(
            insert(shares).values(
                owner=alice.name,
                bucket=BUCKET,
                key=key,
                target_type="user",
                target_name=bob.name,
                level="read",
                created_by=alice.name,
            )
        )
    save = documents.save

    async def fail_after_store_write(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("connection lost after the store write")

    monkeypatch.setattr(documents, "save", fail_after_store_write)
    with pytest.raises(RuntimeError):
        await services.policies.sync_user(bob.name)
    monkeypatch.setattr(documents, "save", save)
    assert bob_s3.can_get(BUCKET, f"{key}/f")  # the store holds the grant; PostgreSQL does not

    async with services.engine.begin() as conn:
        await conn.execute(delete(shares).where(shares.c.key == key))
    await services.policies.sync_user(bob.name)
    assert not bob_s3.can_get(BUCKET, f"{key}/f")


async def test_regenerate_repairs_a_corrupted_overflow_document(
    client: httpx.AsyncClient, kbase: KBase, services: Any, admin: TestUser
) -> None:
    alice, alice_s3, bob, bob_s3 = await pair(client, kbase)
    await seed(services, alice, bob, HELD)
    await share(client, alice, "data/bulk/render-all", bob.name)
    last = home_key(alice, f"data/bulk/d{HELD - 1:04d}")
    assert alice_s3.can_put(BUCKET, f"{last}/f")
    damaged = await holder_of(services, bob.name, last)
    assert damaged != f"user-home-policy-{bob.name}"
    await services.store.put_policy(
        damaged,
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetBucketLocation"],
                    "Resource": [f"arn:aws:s3:::{BUCKET}"],
                }
            ],
        },
    )
    assert not bob_s3.can_get(BUCKET, f"{last}/f")
    response = await client.get("/management/migrate/policy-drift", headers=admin.headers)
    assert response.status_code == 200, response.text
    drifted = {
        f"{d['resource_type']}:{d['resource_name']}": d["problems"]
        for d in response.json()["drifted"]
    }
    assert drifted.get(f"user:{bob.name}") == [f"policy {damaged} differs from its records"]

    response = await client.post("/management/migrate/regenerate-policies", headers=admin.headers)
    assert response.status_code == 200, response.text
    assert bob_s3.can_get(BUCKET, f"{last}/f")
    response = await client.get("/management/migrate/policy-drift", headers=admin.headers)
    assert bob.name not in {d["resource_name"] for d in response.json()["drifted"]}
