"""Provisioning of groups: ``g`` and its read-only twin ``g``ro, their policies and markers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from minio_manager.governance.layout import GLOBAL_GROUP, Layout, read_only_group
from minio_manager.objectstore.port import ObjectStore, StoreObject
from minio_manager.observability import metrics
from minio_manager.provisioning.policy_sync import PolicySync

GROUP_README = """Tenant workspace of group {group}.

  {general}   shared storage (shared/, datasets/, projects/)
  {sql}   Spark SQL warehouse; create databases named {namespace}<name>

Members of {group} can read and write here; members of {group}ro can read.
"""


class _Once:
    """Single-flight of an idempotent setup step: concurrent callers share one run.

    A run that failed (or was cancelled) is started afresh by the next caller; a caller that
    goes away does not cancel the run others are waiting for.
    """

    def __init__(self, start: Callable[[], Awaitable[None]]) -> None:
        self._start = start
        self._task: asyncio.Task[None] | None = None

    async def __call__(self) -> None:
        task = self._task
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._task = asyncio.ensure_future(self._start())
        await asyncio.shield(task)


class GroupProvisioner:
    def __init__(self, store: ObjectStore, layout: Layout, policies: PolicySync) -> None:
        self._store = store
        self._layout = layout
        self._policies = policies
        self._buckets_ready = _Once(lambda: self._store.ensure_buckets(self._layout.all_buckets))
        self._global_ready = _Once(lambda: self.ensure_group(GLOBAL_GROUP))

    async def ensure_buckets(self) -> None:
        """Create missing buckets once per process (buckets are never deleted by us)."""
        await self._buckets_ready()

    async def ensure_global_groups(self) -> None:
        """``globalusers`` + ``globalusersro``, created once per process.

        Single-flight: on a fresh replica a storm of first logins shares one setup instead of
        each re-rendering the global group's policy under its one policy lock — that queue
        of hundreds behind a single principal's lock was the storm's bottleneck (issue 12).
        """
        await self._global_ready()

    async def ensure_group(self, group: str, members: list[str] | None = None) -> None:
        """Create ``group`` and ``group``ro (idempotent) with policies and markers."""
        await self.ensure_buckets()
        twin = read_only_group(group)
        await asyncio.gather(
            self._store.add_group_members(group, members or []),
            self._store.add_group_members(twin, []),
        )
        await asyncio.gather(
            self._policies.sync_group(group, rewrite=True),
            self._policies.sync_group(twin, rewrite=True),
            self._store.put_objects(self._markers(group)),
        )
        metrics.provisioned("group")

    def _markers(self, group: str) -> list[StoreObject]:
        objects = [StoreObject(b, k) for b, k in self._layout.group_marker_keys(group)]
        readme = GROUP_README.format(
            group=group,
            general=self._layout.tenant_general_url(group),
            sql=self._layout.tenant_sql_warehouse_url(group),
            namespace=self._layout.tenant_namespace_prefix(group),
        )
        key = f"{self._layout.tenant_general_key(group)}/README.txt"
        objects.append(StoreObject(self._layout.bucket, key, readme.encode()))
        return objects
