"""Coalesce concurrent "add these users to group g" calls into one store call per batch.

Every first login joins ``globalusers``. MinIO rewrites a group's membership record on each
``update-group-members`` call and applies IAM writes one at a time, so 500 logins making 500
calls to the same group queue behind each other inside MinIO. Membership add is idempotent
and needs no lock, so while one call is in flight the members that arrive meanwhile are
collected and sent together in the next call: a storm costs a handful of calls, not one per
user, and a lone login still costs exactly one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from minio_manager.objectstore.errors import StoreRejected
from minio_manager.objectstore.port import ObjectStore

log = logging.getLogger(__name__)

MAX_BATCH = 200
"""Members per call: keeps one request body small and one failure's blast radius bounded."""


class GroupJoinBatcher:
    """``await join(group, user)`` returns once ``user`` is a member of ``group``."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._pending: dict[str, dict[str, asyncio.Future[None]]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}

    async def join(self, group: str, user: str) -> None:
        waiting = self._pending.setdefault(group, {})
        future = waiting.get(user)
        if future is None:
            future = waiting[user] = asyncio.get_running_loop().create_future()
        if group not in self._running:
            self._running[group] = asyncio.create_task(self._drain(group))
        # shield: a caller that goes away leaves the shared call (and the others) alone.
        await asyncio.shield(future)

    async def _drain(self, group: str) -> None:
        try:
            while waiting := self._pending.get(group):
                batch = {user: waiting.pop(user) for user in list(waiting)[:MAX_BATCH]}
                await self._send(group, batch)
        finally:
            # Normal exit: nothing is pending (no await since the check). Cancelled (shutdown):
            # whoever still waits hears it rather than hanging.
            del self._running[group]
            for future in self._pending.pop(group, {}).values():
                future.cancel()

    async def _send(self, group: str, batch: dict[str, asyncio.Future[None]]) -> None:
        try:
            await self._store.add_group_members(group, list(batch))
        except StoreRejected as exc:
            if len(batch) == 1:
                _settle(batch.values(), exc)
                return
            # One member the store refuses (e.g. deleted meanwhile) must not fail the others.
            log.info("batched join of %s refused (%s); retrying one by one", group, exc.code)
            await asyncio.gather(*(self._send(group, {u: f}) for u, f in batch.items()))
            return
        except BaseException as exc:
            _settle(batch.values(), exc)
            if not isinstance(exc, Exception):
                raise
            return
        _settle(batch.values(), None)


def _settle(futures: Iterable[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        elif isinstance(error, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(error)
