"""Write a principal's policies as a projection of templates + share records.

Each update renders every document from scratch, overwrites the named policies in one call
each, sets the principal's exact attachment list in one call, then removes overflow policies
that are no longer needed. It runs through ``outbox.converge``: under the principal's
PostgreSQL advisory lock (no expiry: it dies with its connection), with the outbox generation
re-checked before every store write, so a renderer that lost its lock or was overtaken by
newer records never writes an older document over a newer one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from minio_manager.checkpoints import checkpoint
from minio_manager.db.engine import transaction
from minio_manager.errors import PolicyOperationError
from minio_manager.governance.layout import (
    Grant,
    Layout,
    group_policy_name,
    user_home_policy_name,
    user_system_policy_name,
)
from minio_manager.governance.naming import base_group_of, is_read_only_group
from minio_manager.governance.policies import (
    is_overflow_name,
    policy_names_for,
    render_policy_documents,
)
from minio_manager.objectstore.errors import StoreRejected
from minio_manager.objectstore.port import ObjectStore
from minio_manager.provisioning import outbox
from minio_manager.provisioning.outbox import Fence
from minio_manager.sharing import store as share_store

log = logging.getLogger(__name__)
T = TypeVar("T")


async def settle(*calls: Awaitable[T]) -> list[T]:
    """Like ``gather``, but waits for *every* call before raising the first failure.

    Inside a principal's lock this matters: with fail-fast ``gather`` the lock would be
    released while sibling writes are still in flight, and a late, older write could land
    after the next holder's newer one.
    """
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)


def _owned(base: str, name: str) -> bool:
    return name == base or is_overflow_name(base, name)


class PolicySync:
    def __init__(
        self,
        store: ObjectStore,
        engine: AsyncEngine,
        layout: Layout,
        *,
        lock_wait_seconds: float,
    ) -> None:
        self._store = store
        self._engine = engine
        self._layout = layout
        self._wait = lock_wait_seconds

    def _render(
        self, base: str, template: Sequence[Grant], received: Sequence[Grant] = ()
    ) -> dict[str, dict[str, Any]]:
        """Name → document for one policy family; the template always lands in the first."""
        documents = render_policy_documents(
            received, pinned=template, max_bytes=self._store.policy_max_bytes
        )
        return dict(zip(policy_names_for(base, len(documents)), documents, strict=True))

    async def _put_documents(self, rendered: dict[str, dict[str, Any]], base: str) -> list[str]:
        """Overwrite the principal's documents (one call each)."""
        try:
            await settle(*(self._store.put_policy(n, d) for n, d in rendered.items()))
        except StoreRejected as exc:
            log.warning("policy %s rejected: %s", base, exc.code)
            raise PolicyOperationError(f"the object store refused policy {base}") from None
        return list(rendered)

    async def _received(
        self, target_type: str, name: str, conn: AsyncConnection | None = None
    ) -> list[Grant]:
        if conn is not None:
            return await share_store.grants_for(conn, target_type, name, self._layout)
        async with transaction(self._engine) as own:
            return await share_store.grants_for(own, target_type, name, self._layout)

    async def render_user(self, user: str) -> dict[str, dict[str, Any]]:
        """What ``sync_user`` would write now (name → document), without writing it."""
        received = await self._received(share_store.USER, user)
        home = self._render(
            user_home_policy_name(user), self._layout.user_home_grants(user), received
        )
        system = self._render(user_system_policy_name(user), self._layout.user_system_grants(user))
        return {**home, **system}

    async def render_group(self, group: str) -> dict[str, dict[str, Any]]:
        """What ``sync_group`` would write now (name → document), without writing it."""
        received = await self._received(share_store.GROUP, group)
        return self._render(group_policy_name(group), self.group_template(group), received)

    async def _drop_stale(self, base: str, before: Sequence[str], after: Sequence[str]) -> None:
        stale = [n for n in before if n not in after and is_overflow_name(base, n)]
        await settle(*(self._store.delete_policy(n) for n in stale))

    def _wait_for(self, try_only: bool) -> float | None:
        return None if try_only else self._wait

    async def sync_user(
        self, user: str, *, try_only: bool = False, unless_applied: bool = False
    ) -> list[str]:
        """Render and apply ``user-home-policy-{u}`` (+ overflow) and the system policy.

        ``try_only``: give up at once (``PrincipalBusy``) if another renderer holds the lock.
        ``unless_applied``: write nothing if another renderer applied the generation this
        call started from while it waited (returns []).
        """
        written = await outbox.converge(
            self._engine,
            (outbox.USER, user),
            lambda fence: self._write_user(user, fence),
            wait_seconds=self._wait_for(try_only),
            unless_applied=unless_applied,
        )
        return written or []

    async def _write_user(self, user: str, fence: Fence) -> list[str]:
        # Records are read after the generation (same connection, READ COMMITTED).
        received = await self._received(share_store.USER, user, fence.conn)
        current = await self._store.get_user(user)
        if current is None:
            # Deleted (or never created): writing policies now would only leave orphans.
            log.info("policy sync skipped: user %s does not exist", user)
            return []
        home = user_home_policy_name(user)
        rendered_home = self._render(home, self._layout.user_home_grants(user), received)
        system = user_system_policy_name(user)
        rendered_system = self._render(system, self._layout.user_system_grants(user))
        await checkpoint("policy.rendered", f"user:{user}")
        await fence.check()
        home_names, system_names = await settle(
            self._put_documents(rendered_home, home),
            self._put_documents(rendered_system, system),
        )
        attached = [*home_names, *system_names]
        await fence.check()
        try:
            await self._store.set_user_policies(user, attached)
        except StoreRejected as exc:
            raise PolicyOperationError(f"could not attach policies ({exc.code})") from None
        await fence.check()
        await self._drop_stale(home, current.policies, attached)
        return attached

    def group_template(self, group: str) -> list[Grant]:
        """``{g}`` gets read-write on its tenant paths, ``{g}ro`` read-only on the same."""
        if is_read_only_group(group):
            return self._layout.group_grants(base_group_of(group), write=False)
        return self._layout.group_grants(group, write=True)

    async def sync_group(
        self, group: str, *, try_only: bool = False, unless_applied: bool = False
    ) -> list[str]:
        """Render and apply ``group-policy-{g}`` (+ overflow) for ``g`` or ``g``ro."""
        written = await outbox.converge(
            self._engine,
            (outbox.GROUP, group),
            lambda fence: self._write_group(group, fence),
            wait_seconds=self._wait_for(try_only),
            unless_applied=unless_applied,
        )
        return written or []

    async def _write_group(self, group: str, fence: Fence) -> list[str]:
        received = await self._received(share_store.GROUP, group, fence.conn)
        current = await self._store.get_group(group)
        if current is None:
            log.info("policy sync skipped: group %s does not exist", group)
            return []
        base = group_policy_name(group)
        rendered = self._render(base, self.group_template(group), received)
        await checkpoint("policy.rendered", f"group:{group}")
        await fence.check()
        names = await self._put_documents(rendered, base)
        await fence.check()
        try:
            await self._store.set_group_policies(group, names)
        except StoreRejected as exc:
            raise PolicyOperationError(f"could not attach policies ({exc.code})") from None
        await fence.check()
        await self._drop_stale(base, current.policies, names)
        return names

    async def remove_user_policies(self, user: str) -> None:
        """Detach and delete every policy of a user (used when deleting the user)."""
        current = await self._store.get_user(user)
        home, system = user_home_policy_name(user), user_system_policy_name(user)
        names = {home, system}
        if current is not None:
            await self._store.set_user_policies(user, [])
            names |= {n for n in current.policies if _owned(home, n)}
        await asyncio.gather(*(self._store.delete_policy(n) for n in sorted(names)))

    async def remove_group_policies(self, group: str) -> None:
        """Detach and delete every policy of a group (used when deleting the group)."""
        current = await self._store.get_group(group)
        base = group_policy_name(group)
        names = {base}
        if current is not None:
            await self._store.set_group_policies(group, [])
            names |= {n for n in current.policies if _owned(base, n)}
        await asyncio.gather(*(self._store.delete_policy(n) for n in sorted(names)))
