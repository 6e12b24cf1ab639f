"""Admission control: a fair (FIFO) bound on concurrent heavy work, and busy-aware pools.

A login storm is hundreds of first calls at once. Letting all of them start provisioning
together makes every one of them slow (CPU, MinIO and the pools are shared) and pushes the
later ones past their pool and lock waits, so *everyone* fails. ``FairGate`` lets a fixed
number run and queues the rest in arrival order; the pools behind it are sized to that bound,
so a caller that got a slot does not then wait long for a connection.

A wait that runs out — here or in a pool — means "busy", never "the dependency is down":
it is ``ServiceBusy`` (429 + Retry-After), while a real failure to reach a dependency stays a
503 in the adapter that saw it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import BlockingConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError

from minio_manager.errors import ServiceBusy


class FairGate:
    """At most ``limit`` holders at once; waiters are admitted strictly first come, first served.

    ``asyncio.Semaphore`` lets a task that arrives just as a slot frees take it ahead of the
    queue; a storm would then starve early arrivals. Here a released slot is handed directly
    to the oldest waiter.
    """

    def __init__(self, limit: int, *, wait_seconds: float, what: str) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._wait = wait_seconds
        self._what = what
        self._active = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.peak_waiting = 0  # for tests and benchmarks

    @property
    def active(self) -> int:
        return self._active

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def _acquire(self) -> None:
        if self._active < self.limit and not self._waiters:
            self._active += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.peak_waiting = max(self.peak_waiting, len(self._waiters))
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self._wait)
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed a slot just as we gave up (or were cancelled): pass it on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves to the waiter; _active unchanged
                return
        self._active -= 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot; ``ServiceBusy`` if none came free within the wait."""
        try:
            await self._acquire()
        except TimeoutError:
            raise ServiceBusy(f"too many {self._what} in progress; try again shortly") from None
        try:
            yield
        finally:
            self._release()


class RedisPoolExhausted(MaxConnectionsError):
    """No pooled Redis connection came free within the pool's wait (Redis itself is fine)."""


class BusyAwareRedisPool(BlockingConnectionPool):
    """A blocking pool whose "no connection available" is told apart from "cannot connect".

    redis-py raises the same ``ConnectionError`` for both; the lock helper must answer a
    queue that ran out as busy, and only a refused or timed-out connect as Redis being down.
    """

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except RedisConnectionError as exc:
            if isinstance(exc.__cause__, TimeoutError) and not isinstance(exc, MaxConnectionsError):
                raise RedisPoolExhausted("no Redis connection came free in time") from None
            raise
