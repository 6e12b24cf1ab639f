"""IAM writes sent while a restarted MinIO is still loading IAM are enforced afterwards.

MinIO accepts IAM writes as soon as its IAM store exists, but the end of its first load
replaces the in-memory IAM with what it read from the drive: a policy written in between is
stored yet not enforced (found by the chaos run; reproduced here with 300 users, where writes
0.10–0.35 s after MinIO first accepted one came back stale). The adapter waits for the load
to end before an IAM write (``MinioStore._confirm_iam``). Checked the way a user meets it:
an S3 read with the user's own keys after the load.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from minio_manager.errors import ObjectStoreUnavailable
from minio_manager.objectstore.minio import MinioStore
from minio_manager.objectstore.port import StoreObject
from tests.support.private_stack import MINIO_ROOT_USER, PrivateMinio
from tests.support.s3 import S3User

pytestmark = [
    pytest.mark.faults,
    pytest.mark.minio_only(reason="MinIO's own IAM load after a restart, on a private MinIO"),
]

BUCKET = "iam-load"
FILLER_USERS = 300
"""Enough IAM for MinIO's start-up load to take a few hundred milliseconds here."""
DELAYS = [0.05 * k for k in range(1, 15)]
"""Seconds after MinIO first accepts a write at which each probe's new policy is written."""


def read_only(prefix: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{BUCKET}/{prefix}/*"],
            }
        ],
    }


def wait_iam_store(endpoint: str) -> None:
    """Until MinIO's cluster check passes: it answers 503 ``iam-offline`` until the IAM store
    exists, i.e. until MinIO accepts IAM writes (while its load may still be running)."""
    while True:
        try:
            if httpx.get(endpoint + "/minio/health/cluster", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.005)


def started_minio(password: str) -> PrivateMinio:
    base = Path(tempfile.mkdtemp(prefix="mms-iamload-", dir="/tmp"))
    base.chmod(0o755)  # as PrivateStack does
    process = PrivateMinio(base, password)
    process.start()
    return process


@pytest_asyncio.fixture
async def minio() -> AsyncIterator[tuple[PrivateMinio, MinioStore]]:
    password = secrets.token_hex(24)
    process = await asyncio.to_thread(started_minio, password)
    store = MinioStore(process.endpoint, MINIO_ROOT_USER, password)
    try:
        yield process, store
    finally:
        await store.close()
        process.stop()


@pytest.mark.parametrize("watched", [True, False], ids=["writes-fail-meanwhile", "silent"])
async def test_policies_written_during_minio_iam_load_are_enforced(
    minio: tuple[PrivateMinio, MinioStore], watched: bool
) -> None:
    """``watched``: the service keeps writing while MinIO is down (it sees the failures).
    ``silent``: the service sends nothing until MinIO accepts IAM writes again (watched
    from outside): what it then meets is its pool's dead connections (a retried send, or a
    new connection opened silently)."""
    process, store = minio
    secret = secrets.token_hex(20)
    gate = asyncio.Semaphore(16)

    async def filler(n: int) -> None:
        async with gate:
            await store.put_policy(f"filler{n}", read_only(f"filler{n}"))
            await store.set_user(f"filler{n:04d}", secret)
            await store.set_user_policies(f"filler{n:04d}", [f"filler{n}"])

    await asyncio.gather(*(filler(n) for n in range(FILLER_USERS)))
    await store.ensure_buckets([BUCKET])
    probes = [f"probe{k}" for k in range(len(DELAYS))]
    for probe in probes:
        await store.set_user(probe, secret)
        await store.put_policy(probe, read_only(f"old-{probe}"))
        await store.set_user_policies(probe, [probe])
    await store.put_objects([StoreObject(BUCKET, f"new-{p}/f", b"x") for p in probes])

    process.kill9()
    process.spawn()  # not waiting: the writes race its start-up
    while watched:  # the first IAM write MinIO accepts
        try:
            await store.put_policy("first", read_only("first"))
            break
        except ObjectStoreUnavailable:
            await asyncio.sleep(0.005)
    if not watched:
        await asyncio.to_thread(wait_iam_store, process.endpoint)

    async def rewrite(probe: str, delay: float) -> None:
        await asyncio.sleep(delay)
        while True:  # MinIO answers 503 until its IAM store exists
            try:
                await store.put_policy(probe, read_only(f"new-{probe}"))
                return
            except ObjectStoreUnavailable:
                await asyncio.sleep(0.005)

    await asyncio.gather(*(rewrite(p, d) for p, d in zip(probes, DELAYS, strict=True)))
    await store.list_groups()  # returns once the load has ended

    def enforced(probe: str) -> bool:
        return S3User(probe, secret, process.endpoint).can_get(BUCKET, f"new-{probe}/f")

    results = await asyncio.gather(*(asyncio.to_thread(enforced, p) for p in probes))
    stale = [f"{d:.2f}s" for d, ok in zip(DELAYS, results, strict=True) if not ok]
    assert stale == [], f"policies written this long after MinIO accepted writes: {stale}"
