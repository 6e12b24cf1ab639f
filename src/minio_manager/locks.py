"""The one lock helper: named Redis locks shared by every replica.

A lock has a wait limit (how long a caller queues before giving up with a 409-style error)
and an expiry (how long Redis keeps it if its holder dies). While the holder is alive the
expiry is renewed every third of its length, so long work (deleting a user's data) never
outlives its lock, yet a crashed holder frees it within one expiry.

Redis connections come from a bounded blocking pool (``admission.BusyAwareRedisPool``): a
wait for a free connection that runs out is ``ServiceBusy`` (429), and only a failure to
reach Redis is ``LockServiceUnavailable`` (503).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError, LockNotOwnedError, MaxConnectionsError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from minio_manager.errors import LockServiceUnavailable, ServiceBusy, ServiceError
from minio_manager.observability import metrics

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
    async def _keep_alive(
        lease: Lease, lock: Lock, name: str, expiry_seconds: float, done: asyncio.Event
    ) -> None:
        """Renew until ``done`` is set.

        ``done`` rather than cancellation alone ends it: a cancel that lands while a renewal
        waits for a pooled connection can come back as the pool's timeout error (redis-py
        turns its wait's timeout into ``ConnectionError``), which would be logged and looped
        over — and the holder, awaiting this task on release, would hang (issue 12 storm).
        """
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), expiry_seconds / 3)
            if done.is_set():
                return
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
        started = time.perf_counter()
        try:
            acquired = await lock.acquire()
        except MaxConnectionsError:
            # Every pooled connection is busy serving other callers: Redis is up, we are busy.
            raise ServiceBusy("too many lock operations in progress; try again shortly") from None
        except (RedisConnectionError, RedisTimeoutError, OSError):
            raise LockServiceUnavailable("the lock service (Redis) is unavailable") from None
        except RedisError as exc:
            log.warning("lock %s failed: %s", name, type(exc).__name__)
            raise LockServiceUnavailable("the lock service (Redis) failed") from None
        metrics.lock_waited(name, time.perf_counter() - started, acquired=bool(acquired))
        if not acquired:
            raise on_timeout(name)
        done = asyncio.Event()
        lease = Lease(lock, name)
        renewal = asyncio.create_task(self._keep_alive(lease, lock, name, expiry_seconds, done))
        try:
            yield lease
        finally:
            done.set()
            renewal.cancel()
            # Bounded: release must never wait on a renewal stuck in a pool queue.
            await asyncio.wait({renewal}, timeout=5)
            try:
                await lock.release()
            except LockNotOwnedError:
                log.warning("lock %s expired before release; raise its expiry", name)
            except (LockError, RedisError, OSError) as exc:
                log.warning("lock %s release failed: %s", name, type(exc).__name__)
