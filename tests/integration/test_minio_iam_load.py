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
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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


async def test_policies_written_during_minio_iam_load_are_enforced(
    minio: tuple[PrivateMinio, MinioStore],
) -> None:
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
    while True:  # the first IAM write MinIO accepts
        try:
            await store.put_policy("first", read_only("first"))
            break
        except ObjectStoreUnavailable:
            await asyncio.sleep(0.005)

    async def rewrite(probe: str, delay: float) -> None:
        await asyncio.sleep(delay)
        await store.put_policy(probe, read_only(f"new-{probe}"))

    await asyncio.gather(*(rewrite(p, d) for p, d in zip(probes, DELAYS, strict=True)))
    await store.list_groups()  # returns once the load has ended

    def enforced(probe: str) -> bool:
        return S3User(probe, secret, process.endpoint).can_get(BUCKET, f"new-{probe}/f")

    results = await asyncio.gather(*(asyncio.to_thread(enforced, p) for p in probes))
    stale = [f"{d:.2f}s" for d, ok in zip(DELAYS, results, strict=True) if not ok]
    assert stale == [], f"policies written this long after MinIO accepted writes: {stale}"
