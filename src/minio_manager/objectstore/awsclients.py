"""The pooled aiobotocore clients of the AWS-IAM adapter, and its one error translation.

Clients are opened on first use (aiohttp sessions belong to the running event loop) and kept
for the life of the process. Every call goes through ``call``, which times it for
``/metrics`` and turns botocore's errors into the port's: connection failures, timeouts and
5xx are ``StoreUnavailable``; any other refusal is ``StoreRejected`` with a ``Refusal`` kind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, TypeVar

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from minio_manager.objectstore.errors import Refusal, StoreRejected, StoreUnavailable
from minio_manager.observability.metrics import observe_dependency

if TYPE_CHECKING:
    from types_aiobotocore_iam import IAMClient
    from types_aiobotocore_s3 import S3Client

log = logging.getLogger(__name__)
T = TypeVar("T")

# botocore's DEBUG lines carry whole response bodies (CreateAccessKey's holds the new secret)
# and request signatures: never below WARNING, whatever LOG_LEVEL says.
for _noisy in ("botocore", "aiobotocore"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)

NOT_FOUND_CODES = frozenset({"NoSuchEntity", "NoSuchBucket", "NoSuchKey", "NotFound"})
CONFLICT_CODES = frozenset({"EntityAlreadyExists", "DeleteConflict", "LimitExceeded"})
INVALID_NAME_CODES = frozenset({"ValidationError", "InvalidInput"})
UNREACHABLE = (BotoConnectionError, HTTPClientError, asyncio.TimeoutError, OSError)


def refusal_kind(status: int, code: str) -> Refusal:
    """An IAM or S3 error code in the port's words."""
    if code in NOT_FOUND_CODES or status == 404:
        return Refusal.NOT_FOUND
    if code in CONFLICT_CODES or status == 409:
        return Refusal.CONFLICT
    if code in INVALID_NAME_CODES:
        return Refusal.INVALID_NAME
    return Refusal.OTHER


def rejection(exc: ClientError) -> StoreRejected | StoreUnavailable:
    """botocore's ``ClientError`` as the port's error.

    SeaweedFS answers some IAM refusals (403s) in S3's XML, which botocore's IAM parser reads
    as code ``Unknown``; the real code is then at the top of the parsed response.
    """
    response: dict[str, Any] = dict(exc.response)
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    error = response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    if code == "Unknown" and response.get("Code"):
        code = str(response["Code"])
    message = str(error.get("Message") or response.get("Message") or "")
    if status >= 500:
        log.warning("object store error %s (%s)", status, code)
        return StoreUnavailable(f"the object store failed (HTTP {status})")
    return StoreRejected(status, code, message, refusal_kind(status, code))


class AwsClients:
    """One IAM and one S3 client over one endpoint, each with its own connection pool."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        *,
        region: str,
        timeout_seconds: float,
        max_connections: int,
    ) -> None:
        self.endpoint = endpoint if "://" in endpoint else "http://" + endpoint
        self._credentials = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
        self._region = region
        self._config = AioConfig(
            connect_timeout=min(5.0, timeout_seconds),
            read_timeout=timeout_seconds,
            max_pool_connections=max_connections,
            # One more try after a dropped keep-alive connection or a throttle; every call
            # the adapter makes is idempotent, so a repeat is safe.
            retries={"mode": "standard", "max_attempts": 2},
            s3={"addressing_style": "path"},
        )
        self._stack = AsyncExitStack()
        self._opening = asyncio.Lock()
        self._iam: IAMClient | None = None
        self._s3: S3Client | None = None

    async def _open(self) -> tuple[IAMClient, S3Client]:
        async with self._opening:
            if self._iam is None or self._s3 is None:
                session = get_session()
                common: dict[str, Any] = {
                    "endpoint_url": self.endpoint,
                    "region_name": self._region,
                    "config": self._config,
                    **self._credentials,
                }
                iam_ctx = session.create_client("iam", **common)
                s3_ctx = session.create_client("s3", **common)
                self._iam = await self._stack.enter_async_context(iam_ctx)
                self._s3 = await self._stack.enter_async_context(s3_ctx)
            return self._iam, self._s3

    async def iam(self) -> IAMClient:
        return self._iam if self._iam is not None else (await self._open())[0]

    async def s3(self) -> S3Client:
        return self._s3 if self._s3 is not None else (await self._open())[1]

    async def close(self) -> None:
        await self._stack.aclose()
        self._iam = self._s3 = None


async def call(operation: str, work: Awaitable[T]) -> T:
    """Await one client call, timed as ``operation`` (e.g. ``iam:CreateUser``); see the
    module doc. botocore retries inside it, so ``work`` is awaited once."""
    started = time.perf_counter()
    error: str | None = None
    try:
        return await work
    except ClientError as exc:
        translated = rejection(exc)
        if isinstance(translated, StoreUnavailable):
            error = "5xx"
        raise translated from None
    except UNREACHABLE as exc:
        error = "unreachable"
        log.warning("object store unreachable: %s: %s", operation, type(exc).__name__)
        raise StoreUnavailable("the object store is unreachable") from None
    finally:
        observe_dependency("object_store", operation, time.perf_counter() - started, error)


async def absent_ok(operation: str, work: Awaitable[Any]) -> bool:
    """``call``, with "not found" meaning done (deleting what is gone); True if it existed."""
    try:
        await call(operation, work)
    except StoreRejected as exc:
        if exc.not_found:
            return False
        raise
    return True
