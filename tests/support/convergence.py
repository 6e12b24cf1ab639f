"""Checks shared by the kill -9 tests and the chaos benchmark: records against enforcement.

"Records always win": whatever PostgreSQL says about a path or a tenant must be what S3
enforces for the keys the service issued, once the outbox has drained. These helpers read
both sides; the callers decide how long to poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from botocore.exceptions import BotoCoreError, ClientError

from tests.support.s3 import S3User

T = TypeVar("T")
PENDING = 202


def outbox_pending(health: dict[str, Any]) -> int | None:
    """``outbox.pending`` of a /health body; None when the service has no outbox section."""
    outbox = health.get("outbox")
    if not isinstance(outbox, dict) or "pending" not in outbox:
        return None
    return int(outbox["pending"])


async def s3_call(fn: Callable[[], T], *, wait_seconds: float = 60.0) -> T:
    """Run a blocking S3 check in a thread, waiting out an unreachable store (not a deny).

    A check right after a 200 may meet the store being killed; what it must then see is the
    store's state once it is back, not a connection error.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return await asyncio.to_thread(fn)
        except (BotoCoreError, ClientError) as exc:
            if isinstance(exc, ClientError) and not _transient(exc):
                raise
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


def _transient(exc: ClientError) -> bool:
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return status >= 500 or code in {"XMinioServerNotInitialized", "ServiceUnavailable"}


async def path_readers(
    http: httpx.AsyncClient, owner_headers: dict[str, str], path_url: str
) -> set[str] | None:
    """Users the records let read ``path_url`` (owner included); None if unanswerable now."""
    try:
        response = await http.post(
            "/sharing/get_path_access_info", json={"path": path_url}, headers=owner_headers
        )
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return set(response.json()["users"])


async def tenant_levels(
    http: httpx.AsyncClient, admin_headers: dict[str, str], tenant: str
) -> dict[str, str] | None:
    """``{member: access_level}`` as the service reports it; None if unanswerable now."""
    try:
        response = await http.get(f"/tenants/{tenant}/members", headers=admin_headers)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return {m["username"]: m["access_level"] for m in response.json()}


async def can_read(s3: S3User, bucket: str, key: str) -> bool:
    return await s3_call(lambda: s3.can_get(bucket, key))


async def can_write(s3: S3User, bucket: str, key: str) -> bool:
    return await s3_call(lambda: s3.can_put(bucket, key, b"probe"))


async def pair_works(s3: S3User, bucket: str, prefix: str) -> bool:
    """Does an issued pair authenticate and reach its own home?"""
    return await s3_call(lambda: s3.can_list(bucket, prefix))
