"""A short-lived cache of group membership, so listing tenants is not N round trips per call.

``GET /tenants`` needs every group's members; asking MinIO for each group on each request
would cost one admin call per group per request. ``GroupMembership`` answers from memory for
at most ``ttl_seconds`` (``GROUP_CACHE_SECONDS``, default 5 s) and shares one fetch among
concurrent misses.

Freshness:
- entries past half their life are refetched in the background (refresh ahead), so under
  steady traffic no request waits for a refill;
- within this process, every membership change goes through ``GroupMembership.store`` (the
  object store handed to every other component), which drops the whole cache before and after
  the change, so a read that starts after a change returns has never seen older state;
- a change made by another replica is seen here within ``ttl_seconds``.

Only read paths that show membership use the cache; policy sync and provisioning read the
store directly, so nothing that writes policies ever acts on cached state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from minio_manager.errors import GroupBusy
from minio_manager.governance.naming import base_group_of
from minio_manager.locks import Lease, LockManager
from minio_manager.objectstore.port import (
    AccessKey,
    ObjectStore,
    StoreGroup,
    StoreObject,
    StoreUser,
)
from minio_manager.observability import metrics

T = TypeVar("T")

MAX_ENTRIES = 20_000
"""Above this many entries, expired ones are swept on the next store."""


class GroupMembership:
    """Cached reads of groups, their members and a user's groups."""

    def __init__(
        self, store: ObjectStore, *, ttl_seconds: float, max_concurrent_fetches: int = 16
    ) -> None:
        self._raw = store
        self._ttl = ttl_seconds
        self._entries: dict[Hashable, tuple[Any, float]] = {}
        self._inflight: dict[Hashable, asyncio.Task[Any]] = {}
        self._generation = 0
        self._slots = asyncio.Semaphore(max_concurrent_fetches)
        self.store: ObjectStore = _TrackingStore(store, self)
        """The object store every other component must use, so that changes invalidate."""
        self.fetches = 0  # round trips made on behalf of the cache, for tests and benchmarks

    # -- reads ------------------------------------------------------------------------------
    async def group_names(self) -> list[str]:
        """Every group in the store, sorted."""
        names: list[str] = await self._get(("groups",), self._raw.list_groups)
        return list(names)

    async def group(self, name: str) -> StoreGroup | None:
        """One group (members and attached policies), or None if it does not exist."""
        group: StoreGroup | None = await self._get(
            ("group", name), lambda: self._raw.get_group(name)
        )
        return group

    async def groups(self, names: Iterable[str]) -> dict[str, StoreGroup | None]:
        """Several groups at once (fetched concurrently, at most a few at a time).

        Fresh entries are answered inline; only misses (and entries due for a refresh
        ahead) go through ``group``. A warm ``GET /tenants`` used to create one task per
        group per request — 140 tasks to read 140 dict entries (issue 12).
        """
        unique = list(dict.fromkeys(names))
        now = time.monotonic()
        half = self._ttl / 2
        result: dict[str, StoreGroup | None] = {}
        slow: list[str] = []
        for name in unique:
            entry = self._entries.get(("group", name))
            if entry is not None and entry[1] - now >= half:
                result[name] = entry[0]
            else:
                slow.append(name)
        if slow:
            found = await asyncio.gather(*(self.group(n) for n in slow))
            result.update(zip(slow, found, strict=True))
        return {name: result[name] for name in unique}

    async def user_groups(self, user: str) -> tuple[str, ...] | None:
        """The groups a user belongs to (one store call), or None if the user does not exist."""

        async def fetch() -> tuple[str, ...] | None:
            found = await self._raw.get_user(user)
            return None if found is None else found.groups

        groups: tuple[str, ...] | None = await self._get(("user", user), fetch)
        return groups

    # -- invalidation -----------------------------------------------------------------------
    def invalidate(self) -> None:
        """Forget everything; fetches already running will not store their (older) answer."""
        self._generation += 1
        self._entries.clear()
        self._inflight.clear()

    # -- machinery --------------------------------------------------------------------------
    async def _get(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[1] > now:
            # Refresh ahead: past half its life an entry is refetched in the background while
            # callers keep getting it, so steady traffic never waits for a refill and nothing
            # served is older than the TTL.
            if entry[1] - now < self._ttl / 2 and key not in self._inflight:
                self._start(key, fetch)
            metrics.cache_lookup("membership", hit=True)
            value: T = entry[0]
            return value
        metrics.cache_lookup("membership", hit=False)
        task = self._inflight.get(key) or self._start(key, fetch)
        # shield: a caller that goes away (client disconnect) does not cancel the shared fetch.
        result: T = await asyncio.shield(task)
        return result

    def _start(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        generation = self._generation
        task = asyncio.get_running_loop().create_task(self._fetch(fetch))
        self._inflight[key] = task
        task.add_done_callback(lambda done: self._settle(key, done, generation))
        return task

    async def _fetch(self, fetch: Callable[[], Awaitable[T]]) -> T:
        async with self._slots:
            self.fetches += 1
            return await fetch()

    def _settle(self, key: Hashable, task: asyncio.Task[Any], generation: int) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if task.cancelled() or task.exception() is not None:
            return  # failures are never cached (exception() also marks it retrieved)
        if generation != self._generation or self._ttl <= 0:
            return
        now = time.monotonic()
        if len(self._entries) >= MAX_ENTRIES:
            self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
        self._entries[key] = (task.result(), now + self._ttl)


class _TrackingStore:
    """The object store, unchanged, except that membership changes invalidate the cache.

    Invalidation happens before and after each change: a fetch that overlaps the change
    started under an older generation, so its answer is discarded rather than cached.
    """

    def __init__(self, inner: ObjectStore, cache: GroupMembership) -> None:
        self._inner = inner
        self._cache = cache
        self.policy_max_bytes = inner.policy_max_bytes

    async def _changing(self, change: Awaitable[T]) -> T:
        self._cache.invalidate()
        try:
            return await change
        finally:
            self._cache.invalidate()

    async def ping(self) -> None:
        await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()

    # users
    async def set_user(self, name: str, secret: str, keep: AccessKey | None = None) -> AccessKey:
        # A new user turns a cached "no such user" into a user with groups.
        return await self._changing(self._inner.set_user(name, secret, keep))

    async def get_user(self, name: str) -> StoreUser | None:
        return await self._inner.get_user(name)

    async def list_users(self) -> list[str]:
        return await self._inner.list_users()

    async def authenticates(self, access_key: str, secret_key: str) -> bool:
        return await self._inner.authenticates(access_key, secret_key)

    async def delete_user(self, name: str) -> None:
        await self._changing(self._inner.delete_user(name))

    # groups
    async def add_group_members(self, group: str, members: Sequence[str]) -> None:
        await self._changing(self._inner.add_group_members(group, members))

    async def remove_group_members(self, group: str, members: Sequence[str]) -> None:
        await self._changing(self._inner.remove_group_members(group, members))

    async def get_group(self, group: str) -> StoreGroup | None:
        return await self._inner.get_group(group)

    async def list_groups(self) -> list[str]:
        return await self._inner.list_groups()

    async def delete_group(self, group: str) -> None:
        await self._changing(self._inner.delete_group(group))

    # policies (attachments are shown by the cached group infos, so they invalidate too)
    async def put_policy(self, name: str, document: dict[str, Any]) -> None:
        await self._inner.put_policy(name, document)

    async def get_policy(self, name: str) -> dict[str, Any] | None:
        return await self._inner.get_policy(name)

    async def list_policies(self) -> list[str]:
        return await self._inner.list_policies()

    async def delete_policy(self, name: str) -> None:
        await self._inner.delete_policy(name)

    async def set_user_policies(self, user: str, names: Sequence[str]) -> None:
        await self._inner.set_user_policies(user, names)

    async def set_group_policies(self, group: str, names: Sequence[str]) -> None:
        await self._changing(self._inner.set_group_policies(group, names))

    # data
    async def ensure_buckets(self, buckets: Sequence[str]) -> None:
        await self._inner.ensure_buckets(buckets)

    async def put_objects(self, objects: Sequence[StoreObject]) -> None:
        await self._inner.put_objects(objects)

    async def delete_prefix(self, bucket: str, prefix: str) -> int:
        return await self._inner.delete_prefix(bucket, prefix)


def group_lock_name(group: str) -> str:
    """One Redis lock per tenant, shared by ``g`` and ``g``ro (both change together)."""
    return f"group_lock:{base_group_of(group)}"


def hold_group_lock(
    locks: LockManager, group: str, *, wait_seconds: float, expiry_seconds: float
) -> AbstractAsyncContextManager[Lease]:
    """Serialise membership changes of one group pair across replicas, so that two moves of
    the same user cannot interleave and leave them in both ``g`` and ``g``ro."""
    return locks.hold(
        group_lock_name(group),
        wait_seconds=wait_seconds,
        expiry_seconds=expiry_seconds,
        on_timeout=lambda _: GroupBusy(
            f"another change to group {base_group_of(group)!r} is still running; try again"
        ),
    )
