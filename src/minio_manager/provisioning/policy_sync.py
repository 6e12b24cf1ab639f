"""Write a principal's policies as a projection of templates + share records.

A principal's grants are placed into its documents stably (``governance/placement.py``) and
the placement last written is kept in PostgreSQL (``documents.py``), so an update writes only
the documents whose grants changed (plus any the store does not show attached, or whose last
write is not known to have committed), sets the attachment list only when it differs, then
removes overflow policies that are no longer needed. ``rewrite`` (provisioning) writes every
document and the attachments regardless. ``repair`` (regenerate) reads every document back from
the store and writes only those whose content differs from the render (canonical comparison),
and the attachments only if they differ: a repair still fixes any drift, since it compares with
the store and not with our own record of what was written, but a store that already agrees
costs reads, which MinIO serves from memory, instead of IAM writes, which it applies one at a
time (issue 12). It runs through ``outbox.converge``:
under the principal's PostgreSQL advisory lock (no expiry: it dies with its connection), with
the lock's connection checked before every store write, so a renderer that lost its lock never
writes an older document over a newer one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
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
from minio_manager.governance.placement import Placement, Previous, as_grants, place
from minio_manager.governance.policies import (
    canonical_document,
    is_overflow_name,
    policy_name_at,
    render_document,
)
from minio_manager.objectstore.errors import StoreRejected
from minio_manager.objectstore.port import ObjectStore
from minio_manager.provisioning import documents, outbox
from minio_manager.provisioning.documents import Written
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


def _converge_slots(engine: AsyncEngine) -> int:
    """How many converges may run at once in this process: half the pool.

    A converge holds its pooled connection throughout and briefly takes a second one to mark
    documents dirty (``documents.mark_dirty``); with at most half the pool converging, they
    can never all hold one connection while waiting for another.
    """
    size = getattr(engine.sync_engine.pool, "size", None)
    return max(1, size() // 2) if callable(size) else 8


def _owned(base: str, name: str) -> bool:
    return name == base or is_overflow_name(base, name)


@dataclass(frozen=True)
class Family:
    """One principal's documents of one kind: ``base``, ``base--2``, … (SPEC §2)."""

    base: str
    template: Sequence[Grant]
    received: Sequence[Grant] = ()


@dataclass(frozen=True)
class _Mode:
    """How much of a principal a converge writes (see the module doc)."""

    rewrite: bool = False
    repair: bool = False


@dataclass
class _Update:
    """What one family's update writes, attaches and removes."""

    family: Family
    placement: Placement
    written: Written
    due: set[int]

    def names(self) -> list[str]:
        return [policy_name_at(self.family.base, p) for p in self.placement.documents]

    def recorded(self) -> bool:
        """Nothing to write and the record already holds exactly this placement, clean."""
        previous = self.written.documents
        return (
            not self.due
            and not self.written.dirty
            and not self.placement.removed
            and previous.keys() == self.placement.documents.keys()
            and all(
                previous[p].levels == levels and previous[p].size == self.placement.sizes[p]
                for p, levels in self.placement.documents.items()
            )
        )

    def stale(self, attached: Sequence[str]) -> set[str]:
        base = self.family.base
        known = {n for n in attached if is_overflow_name(base, n)}
        known |= {policy_name_at(base, p) for p in self.placement.removed}
        return known - set(self.names())


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
        self._gate = asyncio.Semaphore(_converge_slots(engine))

    def _place(self, family: Family, written: Written, *, rewrite: bool = False) -> Placement:
        previous = written.documents
        if rewrite:  # a repair trusts no recorded size either
            previous = {p: Previous(d.levels) for p, d in previous.items()}
        return place(
            previous, family.template, family.received, max_bytes=self._store.policy_max_bytes
        )

    async def _received(self, conn: AsyncConnection, target_type: str, name: str) -> list[Grant]:
        return await share_store.grants_for(conn, target_type, name, self._layout)

    def _user_families(self, user: str, received: Sequence[Grant]) -> list[Family]:
        return [
            Family(user_home_policy_name(user), self._layout.user_home_grants(user), received),
            Family(user_system_policy_name(user), self._layout.user_system_grants(user)),
        ]

    def _group_families(self, group: str, received: Sequence[Grant]) -> list[Family]:
        return [Family(group_policy_name(group), self.group_template(group), received)]

    @property
    def layout(self) -> Layout:
        return self._layout

    def families(self, kind: str, name: str, received: Sequence[Grant]) -> list[Family]:
        """A principal's document families (``kind``: ``user`` or ``group``)."""
        if kind == share_store.USER:
            return self._user_families(name, received)
        return self._group_families(name, received)

    async def attachments_needed(self, conn: AsyncConnection, kind: str, name: str) -> int:
        """How many documents a principal's families would place with the records ``conn``
        sees (its own uncommitted share rows included): each is one attached policy."""
        chosen = self.families(kind, name, await self._received(conn, kind, name))
        written = await documents.load(conn, [f.base for f in chosen])
        return sum(len(self._place(f, written.get(f.base, Written())).documents) for f in chosen)

    def repair_plan(self, family: Family, written: Written) -> _Update:
        """What a ``repair`` places for ``family`` given its record (``due`` left empty: the
        store's copies decide it)."""
        return _Update(family, self._place(family, written, rewrite=True), written, set())

    async def _expected(
        self, target_type: str, name: str, families: Callable[[str, Sequence[Grant]], list[Family]]
    ) -> dict[str, dict[str, Any]]:
        async with transaction(self._engine) as conn:
            chosen = families(name, await self._received(conn, target_type, name))
            written = await documents.load(conn, [f.base for f in chosen])
        rendered: dict[str, dict[str, Any]] = {}
        for family in chosen:
            placement = self._place(family, written.get(family.base, Written()))
            for position, grants in placement.documents.items():
                rendered[policy_name_at(family.base, position)] = render_document(as_grants(grants))
        return rendered

    async def render_user(self, user: str) -> dict[str, dict[str, Any]]:
        """What ``sync_user`` would leave in the store now (name → document), without writing."""
        return await self._expected(share_store.USER, user, self._user_families)

    async def render_group(self, group: str) -> dict[str, dict[str, Any]]:
        """What ``sync_group`` would leave in the store now (name → document), without writing."""
        return await self._expected(share_store.GROUP, group, self._group_families)

    def _wait_for(self, try_only: bool) -> float | None:
        return None if try_only else self._wait

    async def sync_user(
        self,
        user: str,
        *,
        try_only: bool = False,
        unless_applied: bool = False,
        rewrite: bool = False,
        repair: bool = False,
        created: bool = False,
    ) -> list[str]:
        """Apply ``user-home-policy-{u}`` (+ overflow) and the system policy; returns the names
        attached.

        ``try_only``: give up at once (``PrincipalBusy``) if another renderer holds the lock.
        ``unless_applied``: write nothing if another renderer applied the generation this
        call started from while it waited (returns []).
        ``rewrite``: write every document and the attachments, changed or not.
        ``repair``: compare every document and the attachments with the store; write what
        differs (regenerate).
        ``created``: the caller has just created the store user under its credential lock,
        which every deletion holds, so it exists and has nothing attached: its ``user-info``
        is not read (one admin call less on a first login's critical path).
        """
        mode = _Mode(rewrite=rewrite, repair=repair)
        async with self._gate:
            written = await outbox.converge(
                self._engine,
                (outbox.USER, user),
                lambda fence: self._write_user(user, fence, mode, created),
                wait_seconds=self._wait_for(try_only),
                unless_applied=unless_applied,
            )
        return written or []

    async def _write_user(self, user: str, fence: Fence, mode: _Mode, created: bool) -> list[str]:
        # Records are read after the generation (same connection, READ COMMITTED).
        received = await self._received(fence.conn, share_store.USER, user)
        attached: Sequence[str] = ()
        if not created:
            current = await self._store.get_user(user)
            if current is None:
                # Deleted (or never created): writing policies now would only leave orphans.
                log.info("policy sync skipped: user %s does not exist", user)
                return []
            attached = current.policies
        return await self._apply(
            fence,
            f"user:{user}",
            self._user_families(user, received),
            attached,
            lambda names: self._store.set_user_policies(user, names),
            mode=mode,
        )

    def group_template(self, group: str) -> list[Grant]:
        """``{g}`` gets read-write on its tenant paths, ``{g}ro`` read-only on the same."""
        if is_read_only_group(group):
            return self._layout.group_grants(base_group_of(group), write=False)
        return self._layout.group_grants(group, write=True)

    async def sync_group(
        self,
        group: str,
        *,
        try_only: bool = False,
        unless_applied: bool = False,
        rewrite: bool = False,
        repair: bool = False,
    ) -> list[str]:
        """Apply ``group-policy-{g}`` (+ overflow) for ``g`` or ``g``ro (options: ``sync_user``)."""
        mode = _Mode(rewrite=rewrite, repair=repair)
        async with self._gate:
            written = await outbox.converge(
                self._engine,
                (outbox.GROUP, group),
                lambda fence: self._write_group(group, fence, mode),
                wait_seconds=self._wait_for(try_only),
                unless_applied=unless_applied,
            )
        return written or []

    async def _write_group(self, group: str, fence: Fence, mode: _Mode) -> list[str]:
        received = await self._received(fence.conn, share_store.GROUP, group)
        current = await self._store.get_group(group)
        if current is None:
            log.info("policy sync skipped: group %s does not exist", group)
            return []
        return await self._apply(
            fence,
            f"group:{group}",
            self._group_families(group, received),
            current.policies,
            lambda names: self._store.set_group_policies(group, names),
            mode=mode,
        )

    async def _apply(
        self,
        fence: Fence,
        label: str,
        families: Sequence[Family],
        attached: Sequence[str],
        attach: Callable[[list[str]], Awaitable[None]],
        *,
        mode: _Mode,
    ) -> list[str]:
        """Write the documents that changed, then the attachments, then drop stale overflow.

        A document is written when its grants changed, when its last write is not known to
        have committed (``dirty``), when the store does not show it attached (the principal
        was re-created, or someone detached it), or on ``rewrite``; on ``repair``, when the
        store's copy is missing or differs from the render.
        """
        written = await documents.load(fence.conn, [f.base for f in families])
        updates = []
        for family in families:
            before = written.get(family.base, Written())
            placement = self._place(family, before, rewrite=mode.rewrite or mode.repair)
            due = {
                position
                for position in placement.documents
                if mode.rewrite
                or position in placement.changed
                or position in before.dirty
                or policy_name_at(family.base, position) not in attached
            }
            updates.append(_Update(family, placement, before, due))
        if mode.repair:
            await self._due_by_store(updates)
        rendered = {
            policy_name_at(u.family.base, p): render_document(as_grants(u.placement.documents[p]))
            for u in updates
            for p in sorted(u.due)
        }
        await checkpoint("policy.rendered", label)
        await settle(
            *(
                documents.mark_dirty(self._engine, u.family.base, u.due & set(u.written.documents))
                for u in updates
            )
        )
        if rendered:
            await fence.check()
            await self._put_documents(rendered)
        names = [name for u in updates for name in u.names()]
        if mode.rewrite or set(names) != set(attached):
            await fence.check()
            try:
                await attach(names)
            except StoreRejected as exc:
                raise PolicyOperationError(f"could not attach policies ({exc.code})") from None
        stale = sorted(set().union(*(u.stale(attached) for u in updates)))
        if stale:
            await fence.check()
            await settle(*(self._store.delete_policy(n) for n in stale))
        for u in updates:
            if mode.repair and u.recorded():
                continue  # the store agreed and so does the record: nothing to save
            # A repair has compared every document with the store: all are known now.
            kept = u.placement.documents if mode.repair else u.due
            saved = {p: u.placement.documents[p] for p in kept}
            await documents.save(
                fence.conn, u.family.base, saved, u.placement.sizes, u.placement.removed
            )
        return names

    async def _due_by_store(self, updates: Sequence[_Update]) -> None:
        """``repair``: every document is due whose stored copy is missing or differs from
        its render (read back from the store, compared in canonical form)."""
        wanted = {
            policy_name_at(u.family.base, p): (u, p, render_document(as_grants(grants)))
            for u in updates
            for p, grants in u.placement.documents.items()
        }
        stored = await settle(*(self._store.get_policy(n) for n in wanted))
        for u in updates:
            u.due = set()
        for (u, position, document), actual in zip(wanted.values(), stored, strict=True):
            if actual is None or canonical_document(actual) != canonical_document(document):
                u.due.add(position)

    async def _put_documents(self, rendered: dict[str, dict[str, Any]]) -> None:
        """Overwrite the given documents (one call each, concurrently)."""
        try:
            await settle(*(self._store.put_policy(n, d) for n, d in rendered.items()))
        except StoreRejected as exc:
            log.warning("policy document rejected: %s", exc.code)
            raise PolicyOperationError("the object store refused a policy document") from None

    async def _remove(
        self,
        bases: Sequence[str],
        policies: Sequence[str] | None,
        detach: Callable[[], Awaitable[None]],
    ) -> None:
        names = set(bases) | set(await documents.forget(self._engine, bases))
        if policies is not None:
            await detach()
            names |= {n for n in policies for base in bases if _owned(base, n)}
        await asyncio.gather(*(self._store.delete_policy(n) for n in sorted(names)))

    async def remove_user_policies(self, user: str) -> None:
        """Detach and delete every policy of a user (used when deleting the user)."""
        current = await self._store.get_user(user)
        await self._remove(
            [user_home_policy_name(user), user_system_policy_name(user)],
            None if current is None else current.policies,
            lambda: self._store.set_user_policies(user, []),
        )

    async def remove_group_policies(self, group: str) -> None:
        """Detach and delete every policy of a group (used when deleting the group)."""
        current = await self._store.get_group(group)
        await self._remove(
            [group_policy_name(group)],
            None if current is None else current.policies,
            lambda: self._store.set_group_policies(group, []),
        )
