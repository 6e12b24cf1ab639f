"""The one lock helper: named Redis locks shared by every replica.

A lock has a wait limit (how long a caller queues before giving up with a 409-style error)
and an expiry (how long Redis keeps it if its holder dies). While the holder is alive the
expiry is renewed every third of its length, so long work (deleting a user's data) never
outlives its lock, yet a crashed holder frees it within one expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError, LockNotOwnedError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from minio_manager.errors import LockServiceUnavailable, ServiceError

log = logging.getLogger(__name__)


class Lease:
    """A held lock, as seen by its holder: ``check`` before each step that must not run
    once the lock is gone (expired, deleted, or taken over by another holder)."""

    def __init__(self, lock: Lock, name: str) -> None:
        self._lock = lock
        self.name = name
        self.lost = False

    async def check(self, on_lost: Callable[[str], ServiceError]) -> None:
        """Raise ``on_lost(name)`` unless Redis confirms we still own the lock."""
        if not self.lost:
            try:
                self.lost = not await self._lock.owned()
            except (RedisError, OSError):
                self.lost = True  # cannot prove ownership: act as if lost
        if self.lost:
            raise on_lost(self.name)


def credential_lock_name(user: str) -> str:
    return f"credential_lock:{user}"


class LockManager:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    @staticmethod
    async def _keep_alive(lease: Lease, lock: Lock, name: str, expiry_seconds: float) -> None:
        while True:
            await asyncio.sleep(expiry_seconds / 3)
            try:
                await lock.reacquire()
            except LockNotOwnedError:
                lease.lost = True
                log.error("lock %s was lost while held (expired or taken over)", name)
                return
            except (RedisError, OSError) as exc:
                log.warning("lock %s renewal failed: %s", name, type(exc).__name__)

    @asynccontextmanager
    async def hold(
        self,
        name: str,
        *,
        wait_seconds: float,
        expiry_seconds: float,
        on_timeout: Callable[[str], ServiceError],
    ) -> AsyncIterator[Lease]:
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
        lease = Lease(lock, name)
        renewal = asyncio.create_task(self._keep_alive(lease, lock, name, expiry_seconds))
        try:
            yield lease
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            try:
                await lock.release()
            except LockNotOwnedError:
                log.warning("lock %s expired before release; raise its expiry", name)
            except (LockError, RedisError, OSError) as exc:
                log.warning("lock %s release failed: %s", name, type(exc).__name__)
