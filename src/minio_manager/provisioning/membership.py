"""A cache of group membership that costs nothing on a warm read, and hears other replicas.

``GET /tenants`` needs every group's members; asking MinIO for each group on each request
would cost one admin call per group per request. ``GroupMembership`` answers from memory.

Freshness (decisions.md, "Group membership cache"):
- within this process, every membership change goes through ``GroupMembership.store`` (the
  object store handed to every other component), which drops the affected entries before and
  after the change, so a read that starts after a change returns has never seen older state;
- every such change is also *announced* in Redis (``ChangeFeed``): a per-group version and
  a global epoch. Each read first compares the epoch (one ``GET``); when it moved, the
  versions tell which groups to drop. So a change made by another replica is seen by the
  next read that starts after that change returned — without refetching anything else;
- entries live ``max_age_seconds`` (``MEMBERSHIP_CACHE_MAX_SECONDS``): the bound for changes
  made outside the service (``mc admin``) or whose announcement failed. While Redis cannot
  be read, entries live only ``ttl_seconds`` (``GROUP_CACHE_SECONDS``), the old bound;
- past half its life an entry is refetched in the background (refresh ahead). Before the
  feed, lives were 5 s and refresh ahead refetched every group every 2.5 s under load —
  44 % of the service's CPU in a profile of ``GET /tenants`` (issue 12).

Only read paths that show membership use the cache; policy sync and provisioning read the
store directly, so nothing that writes policies ever acts on cached state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

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
log = logging.getLogger(__name__)

MAX_ENTRIES = 20_000
"""Above this many entries, expired ones are swept on the next store."""

EVERYTHING = "*"
"""Announced field for changes whose affected groups are unknown (a user's deletion)."""
USERS = "users"
"""Announced field for changes of who is in which group (drops every cached user's groups)."""


def _group_key(name: str) -> Hashable:
    return ("group", name)


def _user_key(name: str) -> Hashable:
    return ("user", name)


class ChangeFeed:
    """Membership changes announced in Redis: ``epoch`` (INCR) + a version per changed field.

    Fields: ``g:{group}`` (members or attachments), ``names`` (a group created or deleted;
    only replicas of earlier versions, which cached the store's group list, still use it),
    ``users`` (someone's groups changed), ``*`` (unknown: drop everything). Redis holds no
    other state of ours that must survive a restart; a restart resets the epoch, which readers
    take as "drop everything".
    """

    EPOCH = "mms:membership:epoch"
    VERSIONS = "mms:membership:versions"

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def announce(self, fields: Iterable[str]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for field in sorted(set(fields)):
                pipe.hincrby(self.VERSIONS, field, 1)
            pipe.incr(self.EPOCH)
            await pipe.execute()

    async def epoch(self) -> int:
        value = await self._redis.get(self.EPOCH)
        return int(value) if value is not None else 0

    async def versions(self) -> tuple[int, dict[str, int]]:
        """Epoch and versions read together (one MULTI), so neither is newer than the other."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self.EPOCH)
            pipe.hgetall(self.VERSIONS)
            epoch, raw = await pipe.execute()
        versions = {_text(k): int(v) for k, v in raw.items()}
        return (int(epoch) if epoch is not None else 0), versions


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class GroupMembership:
    """Cached reads of groups, their members and a user's groups."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        ttl_seconds: float,
        redis: Redis | None = None,
        max_age_seconds: float = 300.0,
        max_concurrent_fetches: int = 16,
    ) -> None:
        self._raw = store
        self._ttl = ttl_seconds
        self._max_age = max(max_age_seconds, ttl_seconds)
        self._feed = ChangeFeed(redis) if redis is not None else None
        self._listening = False  # the last read of the feed succeeded
        self._deaf_until = 0.0  # after a failed read of the feed, when to try again
        self._look: asyncio.Task[None] | None = None  # a look at the feed in flight
        self._next_look: asyncio.Task[None] | None = None  # the one after it
        self._epoch: int | None = None
        self._versions: dict[str, int] = {}
        self._entries: dict[Hashable, tuple[Any, float]] = {}  # value, fetched at
        self._inflight: dict[Hashable, asyncio.Task[Any]] = {}
        self._generation = 0
        self._key_generations: dict[Hashable, int] = {}
        self._slots = asyncio.Semaphore(max_concurrent_fetches)
        self.store: ObjectStore = _TrackingStore(store, self)
        """The object store every other component must use, so that changes invalidate."""
        self.fetches = 0  # round trips made on behalf of the cache, for tests and benchmarks
        self.stamp = 0
        """Moves whenever an entry is dropped or takes a different value: a result computed
        from entries read at one stamp is still what the cache says while it stays the same."""

    # -- reads ------------------------------------------------------------------------------
    async def group(self, name: str) -> StoreGroup | None:
        """One group (members and attached policies), or None if it does not exist."""
        await self._listen()
        return await self._group(name)

    async def groups(self, names: Iterable[str]) -> dict[str, StoreGroup | None]:
        """Several groups at once (misses fetched concurrently, at most a few at a time).

        Listings pass the names the service knows of (``tenants/register.py``): the cache
        never lists the store's groups, since MinIO's ``list-groups`` holds its IAM write
        lock while it re-reads every group (issue 12)."""
        await self._listen()
        return await self._groups(names)

    async def user_groups(self, user: str) -> tuple[str, ...] | None:
        """The groups a user belongs to (one store call), or None if the user does not exist."""
        await self._listen()

        async def fetch() -> tuple[str, ...] | None:
            found = await self._raw.get_user(user)
            return None if found is None else found.groups

        groups: tuple[str, ...] | None = await self._get(_user_key(user), fetch)
        return groups

    async def _group(self, name: str) -> StoreGroup | None:
        group: StoreGroup | None = await self._get(
            _group_key(name), lambda: self._raw.get_group(name)
        )
        return group

    async def _groups(self, names: Iterable[str]) -> dict[str, StoreGroup | None]:
        # Fresh entries are answered inline; only misses (and entries due for a refresh
        # ahead) go through ``_group``: one task per group per call cost more than the read.
        unique = list(dict.fromkeys(names))
        now = time.monotonic()
        half = self._life() / 2
        result: dict[str, StoreGroup | None] = {}
        slow: list[str] = []
        for name in unique:
            entry = self._entries.get(_group_key(name))
            if entry is not None and now - entry[1] < half:
                result[name] = entry[0]
            else:
                slow.append(name)
        if slow:
            found = await asyncio.gather(*(self._group(n) for n in slow))
            result.update(zip(slow, found, strict=True))
        return {name: result[name] for name in unique}

    async def listen(self) -> None:
        """Hear other replicas' changes now (as every read does first); see ``stamp``."""
        await self._listen()

    def fetched_at(self, names: Iterable[str]) -> float | None:
        """When the oldest of these groups' entries was fetched (None if one is not cached)."""
        oldest: float | None = None
        for name in names:
            entry = self._entries.get(_group_key(name))
            if entry is None:
                return None
            oldest = entry[1] if oldest is None else min(oldest, entry[1])
        return oldest

    def fresh(self, fetched_at: float) -> bool:
        """Whether entries fetched then are still served without a refresh ahead."""
        return self._ttl > 0 and time.monotonic() - fetched_at < self._life() / 2

    # -- invalidation -----------------------------------------------------------------------
    def invalidate(self) -> None:
        """Forget everything; fetches already running will not store their (older) answer."""
        self.stamp += 1
        self._generation += 1
        self._entries.clear()
        self._inflight.clear()

    def drop(self, keys: Iterable[Hashable]) -> None:
        """Forget some entries; their running fetches will not store their answer."""
        for key in keys:
            self._key_generations[key] = self._key_generations.get(key, 0) + 1
            if self._entries.pop(key, None) is not None:
                self.stamp += 1
            self._inflight.pop(key, None)

    def _drop_users(self) -> None:
        self.drop([k for k in (*self._entries, *self._inflight) if _is_user_key(k)])

    async def changed(self, groups: Sequence[str], users: Sequence[str], fields: set[str]) -> None:
        """After a change made here: drop what it touched, then tell the other replicas.

        A failed announcement does not fail the change (it is done); other replicas then see
        it within ``max_age_seconds`` at worst (decisions.md)."""
        self._forget(groups, users, fields)
        if self._feed is None or not fields:
            return  # a new user (no fields): elsewhere it reads as "no groups" either way
        try:
            await self._feed.announce(fields)
        except (RedisError, OSError) as exc:
            log.warning("membership change not announced to other replicas: %s", exc)

    def _forget(self, groups: Sequence[str], users: Sequence[str], fields: set[str]) -> None:
        if EVERYTHING in fields:
            self.invalidate()
            return
        self.drop([_group_key(g) for g in groups] + [_user_key(u) for u in users])
        if USERS in fields:
            self._drop_users()

    async def _listen(self) -> None:
        """Drop what other replicas changed before this read began.

        Concurrent readers share a look at the feed, but only one that *starts* after they
        arrived: a look already in flight may have read the epoch before a change this reader
        must see. So under load one ``GET`` serves a whole wave of readers.
        """
        if self._feed is None or self._ttl <= 0 or time.monotonic() < self._deaf_until:
            return  # no feed, no cache, or Redis just failed: short lives, no waiting on it
        if self._look is None:
            task = self._look = self._spawn_look(None)
        else:
            if self._next_look is None:
                self._next_look = self._spawn_look(self._look)
            task = self._next_look
        await asyncio.shield(task)

    def _spawn_look(self, after: asyncio.Task[None] | None) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._look_after(after))
        task.add_done_callback(self._looked)
        return task

    async def _look_after(self, before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await asyncio.wait([before])
        await self._look_once()

    def _looked(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: readers got it through their shield
        if self._look is task:
            self._look, self._next_look = self._next_look, None

    async def _look_once(self) -> None:
        """One look at the feed: one ``GET`` when nothing changed."""
        assert self._feed is not None
        try:
            epoch = await self._feed.epoch()
            if epoch == self._epoch:
                self._listening = True
                return
            epoch, versions = await self._feed.versions()
        except (RedisError, OSError) as exc:
            if self._listening:
                log.warning("membership changes of other replicas unheard: %s", exc)
            self._listening = False
            # Until the next try, reads neither wait on Redis nor trust old entries.
            self._deaf_until = time.monotonic() + max(self._ttl, 1.0)
            return
        known, self._versions = self._versions, versions
        if (
            self._epoch is None
            or epoch < self._epoch
            or versions.get(EVERYTHING) != known.get(EVERYTHING)
        ):
            # First look, a Redis restart (epoch went back) or a change of unknown reach.
            self.invalidate()
        else:
            fields = {f for f in versions.keys() | known.keys() if versions.get(f) != known.get(f)}
            groups = [f[2:] for f in fields if f.startswith("g:")]
            self._forget(groups, [], fields | {USERS})
        self._epoch = epoch
        self._listening = True

    def _life(self) -> float:
        """How long an entry is served: long while the feed is heard, short otherwise."""
        return self._max_age if self._listening else self._ttl

    # -- machinery --------------------------------------------------------------------------
    async def _get(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        now = time.monotonic()
        life = self._life()
        entry = self._entries.get(key)
        if entry is not None and now - entry[1] < life:
            # Refresh ahead: past half its life an entry is refetched in the background while
            # callers keep getting it, so steady traffic never waits for a refill.
            if now - entry[1] >= life / 2 and key not in self._inflight:
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
        generations = (self._generation, self._key_generations.get(key, 0))
        task = asyncio.get_running_loop().create_task(self._fetch(fetch))
        self._inflight[key] = task
        task.add_done_callback(lambda done: self._settle(key, done, generations))
        return task

    async def _fetch(self, fetch: Callable[[], Awaitable[T]]) -> T:
        async with self._slots:
            self.fetches += 1
            return await fetch()

    def _settle(self, key: Hashable, task: asyncio.Task[Any], generations: tuple[int, int]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if task.cancelled() or task.exception() is not None:
            return  # failures are never cached (exception() also marks it retrieved)
        if generations != (self._generation, self._key_generations.get(key, 0)):
            return  # dropped while it ran: the answer may predate a change
        if self._ttl <= 0:
            return
        now = time.monotonic()
        if len(self._entries) >= MAX_ENTRIES:
            self._entries = {k: v for k, v in self._entries.items() if now - v[1] < self._max_age}
        value, known = task.result(), self._entries.get(key)
        if known is not None and known[0] == value:
            value = known[0]  # the same object: what was built from it is still right
        else:
            self.stamp += 1
        self._entries[key] = (value, now)


def _is_user_key(key: Hashable) -> bool:
    return isinstance(key, tuple) and len(key) == 2 and key[0] == "user"


class _TrackingStore:
    """The object store, unchanged, except that membership changes invalidate the cache.

    The affected entries are dropped before and after each change (a fetch that overlaps the
    change is discarded rather than cached), and the change is announced to other replicas.
    """

    def __init__(self, inner: ObjectStore, cache: GroupMembership) -> None:
        self._inner = inner
        self._cache = cache
        self.policy_max_bytes = inner.policy_max_bytes
        self.policy_max_attachments = inner.policy_max_attachments

    async def _changing(
        self,
        change: Awaitable[T],
        *,
        groups: Sequence[str] = (),
        users: Sequence[str] = (),
        fields: Iterable[str] = (),
    ) -> T:
        announced = {*fields, *(f"g:{g}" for g in groups)}
        self._cache._forget(groups, users, announced)
        try:
            return await change
        finally:
            await self._cache.changed(groups, users, announced)

    async def ping(self) -> None:
        await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()

    # users
    async def set_user(self, name: str, secret: str, keep: AccessKey | None = None) -> AccessKey:
        # A new user turns a cached "no such user" into a user without groups; elsewhere that
        # shows as "no groups" either way, so only this process's entry is dropped.
        return await self._changing(self._inner.set_user(name, secret, keep), users=[name])

    async def get_user(self, name: str) -> StoreUser | None:
        return await self._inner.get_user(name)

    async def list_users(self) -> list[str]:
        return await self._inner.list_users()

    async def authenticates(self, access_key: str, secret_key: str) -> bool:
        return await self._inner.authenticates(access_key, secret_key)

    async def delete_user(self, name: str) -> None:
        # The store takes the user out of every group: which ones is not known here.
        await self._changing(self._inner.delete_user(name), users=[name], fields=[EVERYTHING])

    # groups
    async def add_group_members(self, group: str, members: Sequence[str]) -> None:
        # Adding may create the group, so the list of names changes too.
        await self._changing(
            self._inner.add_group_members(group, members),
            groups=[group],
            users=members,
            fields=["names", USERS],
        )

    async def remove_group_members(self, group: str, members: Sequence[str]) -> None:
        await self._changing(
            self._inner.remove_group_members(group, members),
            groups=[group],
            users=members,
            fields=[USERS],
        )

    async def get_group(self, group: str) -> StoreGroup | None:
        return await self._inner.get_group(group)

    async def list_groups(self) -> list[str]:
        return await self._inner.list_groups()

    async def delete_group(self, group: str) -> None:
        await self._changing(
            self._inner.delete_group(group), groups=[group], fields=["names", USERS]
        )

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
        await self._changing(self._inner.set_group_policies(group, names), groups=[group])

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
