"""Tenants: group ``t`` (read-write) + ``t``ro (read-only) in the store, metadata and stewards in
PostgreSQL.

Who may do what (SPEC §4.2; the full matrix is in docs/decisions.md): anyone lists tenants and
reads a tenant's detail; members, stewards and admins list members and stewards; stewards and
admins edit metadata; stewards manage members who are not stewards (never themselves), admins
manage everyone; only admins create or delete metadata and assign or remove stewards.

Reads of membership come from the short-lived cache (``GroupMembership``); every change reads
the store itself and runs under the tenant's Redis lock, so two replicas moving the same user
cannot interleave and leave them in both groups.

Checks made before taking the lock only fail fast. Whatever a change relies on (the tenant
exists, the user exists, the caller is a steward, the target is not one) is checked again
*inside* the lock against the store and the database, because ``delete_group`` (same lock) or a
steward change may have run while the call waited: acting on the early answer could re-create a
deleted group in the store without its policies and twin.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from minio_manager.audit import store as audit
from minio_manager.auth.kbase import KBaseAuthClient
from minio_manager.db.engine import transaction
from minio_manager.db.fast import FastReader
from minio_manager.errors import (
    GroupOperationError,
    MissingRole,
    ServiceError,
    TenantBadRequest,
    TenantForbidden,
    TenantNotFound,
    UserNotFound,
)
from minio_manager.governance.layout import Layout, read_only_group
from minio_manager.governance.naming import (
    is_read_only_group,
    validate_group_name,
    validate_username,
)
from minio_manager.locks import Lease, LockManager
from minio_manager.objectstore.port import ObjectStore, StoreUser
from minio_manager.observability import metrics
from minio_manager.profiles import store as profiles
from minio_manager.provisioning import outbox
from minio_manager.provisioning.membership import GroupMembership, hold_group_lock
from minio_manager.provisioning.outbox import Principal
from minio_manager.provisioning.reconciler import Enforcer
from minio_manager.tenants import store
from minio_manager.tenants.listing import ListingRenderer, Snapshot
from minio_manager.tenants.schemas import (
    AccessLevel,
    TenantDetail,
    TenantMember,
    TenantMetadata,
    TenantMetadataUpdate,
    TenantSteward,
    TenantStoragePaths,
)
from minio_manager.tenants.store import StewardRecord, TenantRecord

if TYPE_CHECKING:
    from minio_manager.caller import Caller

log = logging.getLogger(__name__)

READ_WRITE: AccessLevel = "read_write"
READ_ONLY: AccessLevel = "read_only"


@dataclass(frozen=True)
class Membership:
    """Who is in ``t`` and ``t``ro; read-write wins if someone is in both."""

    tenant: str
    read_write: frozenset[str]
    read_only: frozenset[str]

    @property
    def members(self) -> frozenset[str]:
        return self.read_write | self.read_only

    def level(self, user: str) -> AccessLevel | None:
        if user in self.read_write:
            return READ_WRITE
        if user in self.read_only:
            return READ_ONLY
        return None


def tenant_name(raw: str) -> str:
    """Validate a tenant name from a path: a base group name, never the ``ro`` twin."""
    try:
        validate_group_name(raw)
    except GroupOperationError as exc:
        raise TenantBadRequest(exc.message) from None
    if is_read_only_group(raw):
        raise TenantBadRequest(
            f"'{raw}' is the read-only form of a tenant; use the tenant's base name"
        )
    return raw


def _metadata(tenant: str, row: TenantRecord | None) -> TenantMetadata:
    if row is None:
        return TenantMetadata(tenant_name=tenant)
    return TenantMetadata(
        tenant_name=row.tenant_name,
        display_name=row.display_name,
        description=row.description,
        website=row.website,
        organization=row.organization,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


class TenantService:
    def __init__(
        self,
        engine: AsyncEngine,
        store_: ObjectStore,
        membership: GroupMembership,
        locks: LockManager,
        auth: KBaseAuthClient,
        layout: Layout,
        *,
        lock_wait_seconds: float,
        lock_expiry_seconds: float,
        enforcer: Enforcer,
        fast: FastReader,
    ) -> None:
        self._enforcer = enforcer
        self._fast = fast
        self._listing = ListingRenderer()
        self._rebuild_now: asyncio.Task[Snapshot] | None = None
        self._rebuild_next: asyncio.Task[Snapshot] | None = None
        self._engine = engine
        self._store = store_
        self._membership = membership
        self._locks = locks
        self._auth = auth
        self._layout = layout
        self._wait = lock_wait_seconds
        self._expiry = lock_expiry_seconds

    # -- helpers ----------------------------------------------------------------------------
    def group_lock(self, group: str) -> AbstractAsyncContextManager[Lease]:
        return hold_group_lock(
            self._locks, group, wait_seconds=self._wait, expiry_seconds=self._expiry
        )

    async def _cached_membership(self, tenant: str) -> Membership:
        """Membership from the cache (for reads); TenantNotFound if ``t`` does not exist."""
        twin = read_only_group(tenant)
        found = await self._membership.groups([tenant, twin])
        rw, ro = found[tenant], found[twin]
        if rw is None:
            raise TenantNotFound(f"Tenant '{tenant}' not found")
        return Membership(
            tenant, frozenset(rw.members), frozenset(ro.members if ro is not None else ())
        )

    async def _require_group(self, tenant: str) -> None:
        """Fresh existence check before a change: never resurrect a group deleted elsewhere."""
        if await self._store.get_group(tenant) is None:
            raise TenantNotFound(f"Tenant '{tenant}' not found")

    async def _require_user(self, user: str) -> StoreUser:
        validate_username(user)
        found = await self._store.get_user(user)
        if found is None:
            raise UserNotFound(f"User '{user}' not found")
        return found

    async def _display_names(self, token: str, users: Iterable[str]) -> dict[str, str | None]:
        """Display names from KBase; the list is still shown (without names) if KBase is down."""
        names = sorted(set(users))
        if not names:
            return {}
        try:
            return await self._auth.display_names(token, names)
        except ServiceError as exc:
            log.warning("display names unavailable: %s", exc.message)
            return {}

    async def _is_steward(self, tenant: str, user: str) -> bool:
        async with transaction(self._engine) as conn:
            return await store.is_steward(conn, tenant, user)

    async def _require_insider(self, caller: Caller, tenant: str, membership: Membership) -> None:
        if caller.is_admin or caller.username in membership.members:
            return
        if not await self._is_steward(tenant, caller.username):
            raise TenantForbidden(
                f"Only members, stewards and admins of tenant '{tenant}' may see this"
            )

    async def _require_steward_or_admin(self, caller: Caller, tenant: str) -> None:
        if caller.is_admin:
            return
        if not await self._is_steward(tenant, caller.username):
            raise TenantForbidden(f"Only stewards of tenant '{tenant}' and admins may do this")

    async def _require_may_manage(self, caller: Caller, tenant: str, user: str) -> None:
        """Stewards manage members who are not stewards; only admins touch a steward's
        membership or level (theirs included). See the matrix in docs/decisions.md."""
        if caller.is_admin:
            return
        if user == caller.username:
            raise TenantForbidden(
                "Stewards cannot change their own membership or access level; ask an admin"
            )
        if await self._is_steward(tenant, user):
            raise TenantForbidden(
                f"'{user}' is a steward of tenant '{tenant}'; only admins can change a"
                " steward's membership or access level"
            )

    @staticmethod
    def _require_admin(caller: Caller) -> None:
        if not caller.is_admin:
            raise MissingRole("this call needs an administrator")

    def _members(
        self,
        membership: Membership,
        stewards: set[str],
        names: dict[str, str | None],
        emails: dict[str, str | None] | None,
    ) -> list[TenantMember]:
        result = []
        for user in sorted(membership.members):
            level = membership.level(user)
            assert level is not None  # every user here is a member
            result.append(
                TenantMember(
                    username=user,
                    display_name=names.get(user),
                    email=emails.get(user) if emails is not None else None,
                    access_level=level,
                    is_steward=user in stewards,
                )
            )
        return result

    @staticmethod
    def _stewards(
        rows: list[StewardRecord],
        names: dict[str, str | None],
        emails: dict[str, str | None] | None,
    ) -> list[TenantSteward]:
        return [
            TenantSteward(
                username=row.username,
                display_name=names.get(row.username),
                email=emails.get(row.username) if emails is not None else None,
                assigned_by=row.assigned_by,
                assigned_at=row.assigned_at,
            )
            for row in rows
        ]

    def storage_paths(self, tenant: str) -> TenantStoragePaths:
        return TenantStoragePaths(
            general_warehouse=self._layout.tenant_general_url(tenant),
            sql_warehouse=self._layout.tenant_sql_warehouse_url(tenant),
            namespace_prefix=self._layout.tenant_namespace_prefix(tenant),
        )

    # -- reads ------------------------------------------------------------------------------
    async def list_tenants(self, caller: Caller) -> bytes:
        """Every tenant whose group exists, with counts and the caller's flags, as the JSON
        body: the kept listing when nothing it was built from changed (one row read), else a
        rebuild shared with every caller waiting for one (``_rebuilt``)."""
        user = caller.username
        state = await store.listing_state(self._fast, user)
        await self._membership.listen()
        body = self._listing.reuse(
            state.fingerprint, self._membership.stamp, self._membership.fresh, user, state.stewarded
        )
        metrics.cache_lookup("tenant_listing", hit=body is not None)
        if body is not None:
            return body
        return self._listing.splice(await self._rebuilt(), user, state.stewarded)

    async def _rebuilt(self) -> Snapshot:
        """A listing from a rebuild that started after this call arrived. Callers arriving
        while one runs share the next one, so a burst after a change costs two rebuilds, not
        one per caller (16 at once at 2 001 tenants queued for a second; issue 12)."""
        if self._rebuild_now is None:
            task = self._rebuild_now = self._spawn_rebuild(None)
        else:
            if self._rebuild_next is None:
                self._rebuild_next = self._spawn_rebuild(self._rebuild_now)
            task = self._rebuild_next
        # shield: a caller that goes away does not cancel the rebuild the others wait for.
        return await asyncio.shield(task)

    def _spawn_rebuild(self, after: asyncio.Task[Snapshot] | None) -> asyncio.Task[Snapshot]:
        task = asyncio.get_running_loop().create_task(self._rebuild(after))
        task.add_done_callback(self._rebuild_done)
        return task

    def _rebuild_done(self, task: asyncio.Task[Snapshot]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: the callers got it through their shield
        if self._rebuild_now is task:
            self._rebuild_now, self._rebuild_next = self._rebuild_next, None

    async def _rebuild(self, after: asyncio.Task[Snapshot] | None) -> Snapshot:
        """One statement (names the service knows, ``tenants/register.py``, with metadata) +
        cached groups, built by ``ListingRenderer`` and kept when it can be reused."""
        if after is not None:
            await asyncio.wait([after])
        await self._membership.listen()
        # Read before the groups: a change made meanwhile makes the next call rebuild again.
        stamp = self._membership.stamp
        listing = await store.listing(self._fast, "")  # stewardships are spliced per caller
        metadata = listing.rows
        groups = [n for t in metadata for n in (t, read_only_group(t))]
        infos = await self._membership.groups(groups)
        # A known tenant whose ``g`` is missing in the store is not one (any more).
        names = sorted(t for t in metadata if infos[t] is not None)
        snapshot = self._listing.build(names, infos, metadata)
        fetched_at = self._membership.fetched_at(groups)
        if listing.fingerprint is not None and fetched_at is not None:
            self._listing.keep(snapshot, listing.fingerprint, stamp, fetched_at)
        return snapshot

    async def detail(self, caller: Caller, tenant: str) -> TenantDetail:
        """Metadata, stewards, members, storage paths; e-mails only for insiders (SPEC FIX)."""
        tenant = tenant_name(tenant)
        membership = await self._cached_membership(tenant)
        async with transaction(self._engine) as conn:
            row = await store.get(conn, tenant)
            steward_rows = await store.stewards(conn, tenant)
            stewards = {s.username for s in steward_rows}
            insider = (
                caller.is_admin
                or caller.username in membership.members
                or caller.username in stewards
            )
            people = membership.members | stewards
            emails = await profiles.emails(conn, sorted(people)) if insider else None
        names = await self._display_names(caller.token, people)
        return TenantDetail(
            metadata=_metadata(tenant, row),
            stewards=self._stewards(steward_rows, names, emails),
            members=self._members(membership, stewards, names, emails),
            member_count=len(membership.members),
            storage_paths=self.storage_paths(tenant),
        )

    async def members(self, caller: Caller, tenant: str) -> list[TenantMember]:
        tenant = tenant_name(tenant)
        membership = await self._cached_membership(tenant)
        await self._require_insider(caller, tenant, membership)
        async with transaction(self._engine) as conn:
            stewards = {s.username for s in await store.stewards(conn, tenant)}
            emails = await profiles.emails(conn, sorted(membership.members))
        names = await self._display_names(caller.token, membership.members)
        return self._members(membership, stewards, names, emails)

    async def stewards(self, caller: Caller, tenant: str) -> list[TenantSteward]:
        tenant = tenant_name(tenant)
        membership = await self._cached_membership(tenant)
        await self._require_insider(caller, tenant, membership)
        async with transaction(self._engine) as conn:
            rows = await store.stewards(conn, tenant)
            emails = await profiles.emails(conn, [r.username for r in rows])
        names = await self._display_names(caller.token, [r.username for r in rows])
        return self._stewards(rows, names, emails)

    # -- metadata ---------------------------------------------------------------------------
    async def create(
        self, caller: Caller, tenant: str, body: TenantMetadataUpdate | None
    ) -> TenantMetadata:
        """Create the metadata row (admin); an existing row is returned unchanged."""
        self._require_admin(caller)
        tenant = tenant_name(tenant)
        await self._require_group(tenant)
        fields = body.changes() if body is not None else {}
        async with self.group_lock(tenant):
            await self._require_group(tenant)  # not deleted while we waited
            async with transaction(self._engine) as conn:
                row, created = await store.create(conn, tenant, caller.username, fields)
                if created:
                    await audit.record(
                        conn,
                        actor=caller.username,
                        action="tenant.create",
                        target=tenant,
                        details=fields,
                    )
        return _metadata(tenant, row)

    async def update(
        self, caller: Caller, tenant: str, body: TenantMetadataUpdate
    ) -> TenantMetadata:
        """Change the fields sent (steward or admin); creates the row if it was missing."""
        tenant = tenant_name(tenant)
        await self._require_group(tenant)
        await self._require_steward_or_admin(caller, tenant)
        fields = body.changes()
        async with self.group_lock(tenant):
            await self._require_group(tenant)
            await self._require_steward_or_admin(caller, tenant)
            async with transaction(self._engine) as conn:
                await store.create(conn, tenant, caller.username, {})
                row = await store.update_fields(conn, tenant, caller.username, fields)
                await audit.record(
                    conn,
                    actor=caller.username,
                    action="tenant.update",
                    target=tenant,
                    details=fields,
                )
        return _metadata(tenant, row)

    async def delete(self, caller: Caller, tenant: str) -> None:
        """Delete the metadata row and (by cascade) its stewards; the groups stay."""
        self._require_admin(caller)
        tenant = tenant_name(tenant)
        async with self.group_lock(tenant), transaction(self._engine) as conn:
            stewards = [s.username for s in await store.stewards(conn, tenant)]
            if not await store.delete_metadata(conn, tenant):
                raise TenantNotFound(f"Tenant '{tenant}' has no metadata")
            await audit.record(
                conn,
                actor=caller.username,
                action="tenant.delete",
                target=tenant,
                details={"stewards_removed": stewards},
            )

    # -- members ----------------------------------------------------------------------------
    async def add_member(
        self, caller: Caller, tenant: str, user: str, permission: AccessLevel
    ) -> tuple[TenantMember, list[Principal]]:
        """Add ``user`` at ``permission``, moving them out of the other group (SPEC FIX).

        The move is two membership intents committed with the audit row; they are applied in
        an order that never grants more than the old or the new state (an upgrade joins ``t``
        before leaving ``t``ro, a downgrade leaves ``t`` before joining ``t``ro), and since
        ``t`` grants everything ``t``ro does, any half-applied state is bounded by the
        higher of the two levels. Returns the member and the intents left pending.
        """
        tenant = tenant_name(tenant)
        validate_username(user)
        await self._require_group(tenant)
        await self._require_steward_or_admin(caller, tenant)
        await self._require_may_manage(caller, tenant, user)
        await self._require_user(user)
        twin = read_only_group(tenant)
        async with self.group_lock(tenant):
            # Again under the lock: any of these may have changed while we waited.
            await self._require_group(tenant)
            await self._require_steward_or_admin(caller, tenant)
            await self._require_may_manage(caller, tenant, user)
            groups = set((await self._require_user(user)).groups)
            previous = READ_WRITE if tenant in groups else READ_ONLY if twin in groups else None
            if permission == READ_WRITE:
                moves = [(tenant, outbox.IN), (twin, outbox.OUT)]
            else:
                moves = [(tenant, outbox.OUT), (twin, outbox.IN)]
            async with transaction(self._engine) as conn:
                intents = [await outbox.intend(conn, g, user, d) for g, d in moves]
                await audit.record(
                    conn,
                    actor=caller.username,
                    action="tenant.member.add",
                    target=f"{tenant}/{user}",
                    details={"permission": permission, "previous": previous},
                )
            pending = await self._enforcer.enforce_in_order(intents)
        async with transaction(self._engine) as conn:
            steward = await store.is_steward(conn, tenant, user)
            emails = await profiles.emails(conn, [user])
        names = await self._display_names(caller.token, [user])
        member = TenantMember(
            username=user,
            display_name=names.get(user),
            email=emails.get(user),
            access_level=permission,
            is_steward=steward,
        )
        return member, pending

    async def remove_member(self, caller: Caller, tenant: str, user: str) -> list[Principal]:
        """Remove ``user`` from ``t`` and ``t``ro. Stewards may not remove themselves or other
        stewards; when an admin removes a steward, the steward row goes too."""
        tenant = tenant_name(tenant)
        validate_username(user)
        await self._require_group(tenant)
        await self._require_steward_or_admin(caller, tenant)
        await self._require_may_manage(caller, tenant, user)
        await self._require_user(user)
        async with self.group_lock(tenant):
            # Under the lock, where stewardships change: the target may have become a steward
            # (or the caller stopped being one) since the checks above.
            await self._require_group(tenant)
            await self._require_steward_or_admin(caller, tenant)
            await self._require_may_manage(caller, tenant, user)
            await self._require_user(user)
            async with transaction(self._engine) as conn:
                intents = [
                    await outbox.intend(conn, g, user, outbox.OUT)
                    for g in (tenant, read_only_group(tenant))
                ]
                steward_removed = await store.remove_steward(conn, tenant, user)
                await audit.record(
                    conn,
                    actor=caller.username,
                    action="tenant.member.remove",
                    target=f"{tenant}/{user}",
                    details={"steward_removed": steward_removed},
                )
            return await self._enforcer.enforce(intents)

    # -- stewards ---------------------------------------------------------------------------
    async def assign_steward(
        self, caller: Caller, tenant: str, user: str
    ) -> tuple[TenantSteward, list[Principal]]:
        """Make ``user`` a steward (admin; idempotent), adding them read-write if not a member."""
        self._require_admin(caller)
        tenant = tenant_name(tenant)
        validate_username(user)
        await self._require_group(tenant)
        await self._require_user(user)
        async with self.group_lock(tenant):
            # Again under the lock, against the store: adding a member to a group deleted
            # meanwhile would re-create it without its policies and read-only twin.
            await self._require_group(tenant)
            groups = set((await self._require_user(user)).groups)
            joined = not groups & {tenant, read_only_group(tenant)}
            intents: list[Principal] = []
            async with transaction(self._engine) as conn:
                if joined:
                    intents.append(await outbox.intend(conn, tenant, user, outbox.IN))
                await store.create(conn, tenant, caller.username, {})
                row, created = await store.add_steward(conn, tenant, user, caller.username)
                if created or joined:
                    await audit.record(
                        conn,
                        actor=caller.username,
                        action="steward.assign",
                        target=f"{tenant}/{user}",
                        details={"added_read_write": joined},
                    )
                emails = await profiles.emails(conn, [user])
            pending = await self._enforcer.enforce(intents)
        names = await self._display_names(caller.token, [user])
        return self._stewards([row], names, emails)[0], pending

    async def remove_steward(self, caller: Caller, tenant: str, user: str) -> None:
        """Drop the steward row (admin); membership is kept."""
        self._require_admin(caller)
        tenant = tenant_name(tenant)
        validate_username(user)
        await self._require_group(tenant)
        async with self.group_lock(tenant), transaction(self._engine) as conn:
            if not await store.remove_steward(conn, tenant, user):
                raise TenantNotFound(f"User '{user}' is not a steward of tenant '{tenant}'")
            await audit.record(
                conn, actor=caller.username, action="steward.remove", target=f"{tenant}/{user}"
            )
