"""The one lock helper: named Redis locks shared by every replica.

A lock has a wait limit (how long a caller queues before giving up with a 409-style error)
and an expiry (how long Redis keeps it if its holder dies); the expiry must cover the work.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError, LockNotOwnedError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from minio_manager.errors import LockServiceUnavailable, ServiceError

log = logging.getLogger(__name__)


def credential_lock_name(user: str) -> str:
    return f"credential_lock:{user}"


def policy_lock_name(kind: str, name: str) -> str:
    """Per-principal lock around render-and-write of its policies (kind: user or group)."""
    return f"policy_lock:{kind}:{name}"


class LockManager:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    @asynccontextmanager
    async def hold(
        self,
        name: str,
        *,
        wait_seconds: float,
        expiry_seconds: float,
        on_timeout: Callable[[str], ServiceError],
    ) -> AsyncIterator[None]:
        lock = self._redis.lock(
            name, timeout=expiry_seconds, blocking=True, blocking_timeout=wait_seconds
        )
        try:
            acquired = await lock.acquire()
        except (RedisConnectionError, RedisTimeoutError, OSError):
            raise LockServiceUnavailable("the lock service (Redis) is unavailable") from None
        except RedisError as exc:
            log.warning("lock %s failed: %s", name, type(exc).__name__)
            raise LockServiceUnavailable("the lock service (Redis) failed") from None
        if not acquired:
            raise on_timeout(name)
        try:
            yield
        finally:
            try:
                await lock.release()
            except LockNotOwnedError:
                log.warning("lock %s expired before release; raise its expiry", name)
            except (LockError, RedisError, OSError) as exc:
                log.warning("lock %s release failed: %s", name, type(exc).__name__)
