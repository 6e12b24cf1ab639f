"""Enforcement of outbox rows: inline after a commit, and by a reconciler in every replica.

``Enforcer.enforce`` is what a request runs after committing records: it converges each
affected outbox row (waiting a bounded time for the row's advisory lock) and returns the
rows it could not finish. Those stay pending — recorded with their error and next attempt —
and the ``Reconciler`` of any replica finishes them: it polls due rows about every half
second (sooner when this process just left work behind), tries each row's lock without
waiting (a row held elsewhere is being handled), and retries with backoff while a
dependency is down. A crashed replica's rows are simply due rows to the next poller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncEngine

from minio_manager.checkpoints import checkpoint
from minio_manager.db.engine import transaction
from minio_manager.errors import PrincipalBusy, ServiceError
from minio_manager.objectstore.port import ObjectStore
from minio_manager.provisioning import outbox
from minio_manager.provisioning.outbox import Fence, Principal
from minio_manager.provisioning.policy_sync import PolicySync

log = logging.getLogger(__name__)

INLINE_CONCURRENCY = 8
"""Rows one request converges at once (each holds a pooled connection while it writes)."""


def error_code(exc: BaseException) -> str:
    """A short, secret-free description of a failure for ``last_error`` and logs."""
    if isinstance(exc, ServiceError):
        return f"{exc.error_type} ({exc.code})"
    return type(exc).__name__


class Enforcer:
    def __init__(
        self, engine: AsyncEngine, store: ObjectStore, policies: PolicySync, *, wait_seconds: float
    ) -> None:
        self._engine = engine
        self._store = store
        self._policies = policies
        self._wait = wait_seconds
        self.wake = asyncio.Event()
        """Set when this process leaves work behind, so the reconciler looks at once."""

    async def converge(self, principal: Principal, *, try_only: bool) -> None:
        kind, name = principal
        if kind == outbox.USER:
            await self._policies.sync_user(name, try_only=try_only, unless_applied=True)
        elif kind == outbox.GROUP:
            await self._policies.sync_group(name, try_only=try_only, unless_applied=True)
        else:
            await outbox.converge(
                self._engine,
                principal,
                lambda fence: self._apply_membership(name, fence),
                wait_seconds=None if try_only else self._wait,
                unless_applied=True,
            )

    async def _apply_membership(self, name: str, fence: Fence) -> None:
        """Make the store agree with one membership intent. A missing user or group is left
        alone: joining would create the group anew (without policies or twin)."""
        group, user = outbox.split_member(name)
        found = await self._store.get_user(user)
        if found is None:
            return
        inside = group in found.groups
        if fence.desired == outbox.IN and not inside:
            if await self._store.get_group(group) is None:
                log.info("membership %s skipped: group is gone", name)
                return
            await checkpoint("member.decided", name)
            await fence.check()
            await self._store.add_group_members(group, [user])
        elif fence.desired == outbox.OUT and inside:
            await checkpoint("member.decided", name)
            await fence.check()
            await self._store.remove_group_members(group, [user])

    async def attempt(self, principal: Principal, *, try_only: bool) -> BaseException | None:
        """Converge one row; on failure record it (best effort) and return the error."""
        try:
            await self.converge(principal, try_only=try_only)
        except PrincipalBusy as exc:
            return exc
        except Exception as exc:
            with contextlib.suppress(Exception):
                await outbox.record_failure(self._engine, principal, error_code(exc))
            return exc
        return None

    async def enforce_in_order(self, principals: Iterable[Principal]) -> list[Principal]:
        """Converge rows one after the other (membership moves: join before leave, or the
        reverse); after the first failure the rest are left to the reconciler, so the order
        still holds. Returns the rows left pending."""
        todo = list(principals)
        for index, principal in enumerate(todo):
            error = await self.attempt(principal, try_only=False)
            if error is not None:
                self._left_pending([(principal, error)])
                return todo[index:]
        return []

    async def enforce(self, principals: Iterable[Principal]) -> list[Principal]:
        """Converge rows whose records were just committed; returns those left pending."""
        todo = sorted(set(principals))
        if not todo:
            return []
        gate = asyncio.Semaphore(INLINE_CONCURRENCY)

        async def one(principal: Principal) -> BaseException | None:
            async with gate:
                return await self.attempt(principal, try_only=False)

        results = await asyncio.gather(*(one(p) for p in todo))
        failed = [(p, e) for p, e in zip(todo, results, strict=True) if e is not None]
        self._left_pending(failed)
        return [p for p, _ in failed]

    def _left_pending(self, failed: list[tuple[Principal, BaseException]]) -> None:
        for principal, exc in failed:
            log.warning(
                "enforcement of %s left pending: %s", outbox.describe(principal), error_code(exc)
            )
        if failed:
            self.wake.set()


class Reconciler:
    """Finishes pending outbox rows in the background (one per replica)."""

    def __init__(
        self,
        engine: AsyncEngine,
        enforcer: Enforcer,
        *,
        interval_seconds: float = 0.5,
        batch: int = 32,
        concurrency: int = 8,
    ) -> None:
        self._engine = engine
        self._enforcer = enforcer
        self._interval = interval_seconds
        self._batch = batch
        self._gate = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-reconciler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        wake = self._enforcer.wake
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self._interval)
            wake.clear()
            try:
                failures = await self.run_once()
            except Exception as exc:  # never let the loop die: the next poll tries again
                failures = [exc]
            self._report(failures)

    def _report(self, failures: list[BaseException]) -> None:
        """Log once when an outage starts and once when it ends, not on every poll."""
        if failures and not self._failing:
            log.warning("reconciler: enforcement failing (%s); retrying", error_code(failures[0]))
        elif not failures and self._failing:
            log.info("reconciler: enforcement recovered")
        self._failing = bool(failures)

    async def run_once(self) -> list[BaseException]:
        """One pass over due rows; returns the failures (rows busy elsewhere are not)."""
        async with transaction(self._engine) as conn:
            rows = await outbox.due(conn, self._batch)

        async def one(principal: Principal) -> BaseException | None:
            async with self._gate:
                return await self._enforcer.attempt(principal, try_only=True)

        results = await asyncio.gather(*(one(p) for p in rows))
        return [e for e in results if e is not None and not isinstance(e, PrincipalBusy)]
