"""The MinIO adapter's paging and the Redis lock's renewal, on the real stack."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from minio_manager.errors import CredentialLockTimeout, ServiceError
from minio_manager.objectstore.minio import MinioStore
from minio_manager.objectstore.port import StoreObject
from tests.support.store import list_keys, open_store

BUCKET = "cdm-lake"


async def test_delete_prefix_pages_through_more_than_one_listing(services: Any) -> None:
    store = services.store
    base = f"test-paging/{uuid.uuid4().hex[:10]}"
    objects = [StoreObject(BUCKET, f"{base}/k{n:05d}") for n in range(1100)]
    sibling = StoreObject(BUCKET, f"{base}x/keep")
    for start in range(0, len(objects), 100):
        await store.put_objects(objects[start : start + 100])
    await store.put_objects([sibling])
    assert len(await list_keys(BUCKET, f"{base}/")) == 1100
    assert await store.delete_prefix(BUCKET, f"{base}/") == 1100
    assert await list_keys(BUCKET, f"{base}/") == []
    assert await list_keys(BUCKET, f"{base}x/") == [sibling.key]
    await store.delete_prefix(BUCKET, f"{base}x/")


def _timeout(name: str) -> ServiceError:
    return CredentialLockTimeout(f"busy: {name}")


async def test_lock_is_renewed_while_held_and_freed_after(services: Any) -> None:
    locks, redis = services.locks, services.redis
    name = f"test_lock:{uuid.uuid4().hex}"
    async with locks.hold(name, wait_seconds=1, expiry_seconds=1.2, on_timeout=_timeout):
        await asyncio.sleep(3.0)  # 2.5 expiries: only renewal keeps it
        assert await redis.pttl(name) > 0
        with pytest.raises(CredentialLockTimeout):
            async with locks.hold(name, wait_seconds=0.2, expiry_seconds=5, on_timeout=_timeout):
                pass
    assert await redis.exists(name) == 0
    async with locks.hold(name, wait_seconds=0.2, expiry_seconds=5, on_timeout=_timeout):
        pass


@pytest.mark.minio_only(reason="MinIO seals list-users answers with Argon2id (64 MiB to open)")
async def test_concurrent_user_listings_share_calls_that_started_after_them(
    service_env: dict[str, str],
) -> None:
    """A burst of ``list_users`` sends two ``list-users`` calls (the first caller's, and one
    after it shared by the rest), and no caller gets a list older than its own call."""
    store = open_store(service_env)
    assert isinstance(store, MinioStore)
    sent: list[str] = []

    async def record(request: httpx.Request) -> None:
        if request.url.path.endswith("/list-users"):
            sent.append(request.url.path)

    store.http.event_hooks["request"].append(record)
    first = f"lu{uuid.uuid4().hex[:10]}"
    second = f"lu{uuid.uuid4().hex[:10]}"
    try:
        await store.set_user(first, "s" * 40)
        burst = await asyncio.gather(*(store.list_users() for _ in range(6)))
        assert all(first in listed for listed in burst)
        assert len(sent) == 2

        early = asyncio.ensure_future(store.list_users())
        await asyncio.sleep(0)  # its call is under way
        await store.set_user(second, "s" * 40)
        assert second in await store.list_users()  # began after ``second`` existed
        assert first in await early
    finally:
        for user in (first, second):
            await store.delete_user(user)
        await store.close()
