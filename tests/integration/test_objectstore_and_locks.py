"""The MinIO adapter's paging and the Redis lock's renewal, on the real stack."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from minio_manager.errors import CredentialLockTimeout, ServiceError
from minio_manager.objectstore.port import StoreObject
from tests.support.store import list_keys

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
