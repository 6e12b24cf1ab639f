"""Admin management of users and groups (SPEC §4.5).

Deletions are ordered so that an interrupted run can simply be repeated: the principal itself
(the MinIO user, or the two groups) goes last, so "does it still exist?" stays true until
everything else of it is gone, and every earlier step is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from minio_manager.audit import store as audit
from minio_manager.credentials import store as credential_store
from minio_manager.credentials.service import CredentialService
from minio_manager.credentials.store import StoredCredentials
from minio_manager.db.engine import read, transaction
from minio_manager.enforcement import state
from minio_manager.errors import (
    GroupNotFound,
    GroupOperationError,
    MissingRole,
    ObjectStoreUnavailable,
    ServiceError,
    UserNotFound,
)
from minio_manager.governance.layout import (
    GLOBAL_GROUP,
    SPARK_LOGS_BUCKET,
    SPARK_LOGS_PREFIX,
    Layout,
    group_policy_name,
    read_only_group,
)
from minio_manager.governance.naming import (
    is_read_only_group,
    validate_group_name,
    validate_username,
)
from minio_manager.locks import Lease, LockManager
from minio_manager.management.schemas import (
    GroupInfo,
    GroupListResponse,
    GroupManagementResponse,
    GroupNamesResponse,
    ResourceDeleteResponse,
    RotateAllResponse,
    RotationFailure,
    UserAdoptResponse,
    UserListResponse,
    UserManagementResponse,
    UserNamesResponse,
    UserSummary,
)
from minio_manager.objectstore.port import ObjectStore, StoreGroup, StoreUser
from minio_manager.profiles import store as profiles
from minio_manager.provisioning import managed as managed_store
from minio_manager.provisioning import outbox
from minio_manager.provisioning.groups import GroupProvisioner
from minio_manager.provisioning.managed import ManagedUsers
from minio_manager.provisioning.membership import GroupMembership, hold_group_lock
from minio_manager.provisioning.outbox import Principal
from minio_manager.provisioning.policy_sync import PolicySync
from minio_manager.provisioning.reconciler import Enforcer
from minio_manager.sharing import store as share_store
from minio_manager.tenants import register as group_register
from minio_manager.tenants import store as tenant_store

if TYPE_CHECKING:
    from minio_manager.caller import Caller

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_CONCURRENT_LOOKUPS = 16
"""Store calls in flight at once when listing a page of users."""
MAX_CONCURRENT_ROTATIONS = 4
"""Rotations in flight at once: each takes a lock and sets a secret (an Argon2id round)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise MissingRole("this call needs an administrator")


async def _bounded(limit: int, calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    slots = asyncio.Semaphore(limit)

    async def run(call: Callable[[], Awaitable[T]]) -> T:
        async with slots:
            return await call()

    return list(await asyncio.gather(*(run(c) for c in calls)))


class ManagementService:
    def __init__(
        self,
        engine: AsyncEngine,
        store_: ObjectStore,
        membership: GroupMembership,
        locks: LockManager,
        credentials: CredentialService,
        policies: PolicySync,
        groups: GroupProvisioner,
        managed: ManagedUsers,
        layout: Layout,
        *,
        group_lock_wait_seconds: float,
        group_lock_expiry_seconds: float,
        enforcer: Enforcer,
    ) -> None:
        self._enforcer = enforcer
        self._engine = engine
        self._store = store_
        self._membership = membership
        self._locks = locks
        self._credentials = credentials
        self._policies = policies
        self._groups = groups
        self._managed = managed
        self._layout = layout
        self._group_wait = group_lock_wait_seconds
        self._group_expiry = group_lock_expiry_seconds

    # -- helpers ----------------------------------------------------------------------------
    def _group_lock(self, group: str) -> AbstractAsyncContextManager[Lease]:
        return hold_group_lock(
            self._locks, group, wait_seconds=self._group_wait, expiry_seconds=self._group_expiry
        )

    def _credential_lock(self, user: str) -> AbstractAsyncContextManager[Lease]:
        """The same lock ``GET /credentials/`` takes, so a login cannot re-provision a user
        halfway through their deletion."""
        return self._credentials.lock(user)

    async def _existing_user(self, user: str) -> StoreUser:
        validate_username(user)
        found = await self._store.get_user(user)
        if found is None:
            raise UserNotFound(f"User '{user}' not found")
        return found

    async def _existing_group(self, group: str) -> StoreGroup:
        validate_group_name(group)
        found = await self._store.get_group(group)
        if found is None:
            raise GroupNotFound(f"Group '{group}' not found")
        return found

    async def _policy_count(self, user: StoreUser) -> int:
        infos = await self._membership.groups(user.groups)
        return len(user.policies) + sum(len(g.policies) for g in infos.values() if g is not None)

    async def _user_response(
        self, caller: Caller, creds: StoredCredentials, operation: str
    ) -> UserManagementResponse:
        found = await self._store.get_user(creds.username)
        groups = list(found.groups) if found is not None else []
        return UserManagementResponse(
            username=creds.username,
            access_key=creds.access_key,
            secret_key=creds.secret_key,
            home_paths=self._layout.user_home_urls(creds.username),
            groups=groups,
            total_policies=await self._policy_count(found) if found is not None else 0,
            operation=operation,
            performed_by=caller.username,
            timestamp=_now(),
        )

    def _group_response(
        self,
        caller: Caller,
        group: str,
        info: StoreGroup | None,
        operation: str,
        pending: Sequence[Principal] = (),
    ) -> GroupManagementResponse:
        members = list(info.members) if info is not None else []
        return GroupManagementResponse(
            group_name=group,
            ro_group_name=None if is_read_only_group(group) else read_only_group(group),
            members=members,
            member_count=len(members),
            policy_name=group_policy_name(group),
            operation=operation,
            performed_by=caller.username,
            timestamp=_now(),
            **state(pending),
        )

    # -- users ------------------------------------------------------------------------------
    async def _user_names(self, include_unmanaged: bool) -> list[str]:
        """The users the service manages, from PostgreSQL, sorted; with ``include_unmanaged``
        also every other store user (MinIO's ``list-users``: its answer is sealed with
        Argon2id, 64 MiB of memory per call, so it is asked only on request)."""
        names = await read(self._engine, managed_store.usernames)
        if include_unmanaged:
            names = sorted(set(names).union(await self._store.list_users()))
        return names

    async def user_names(
        self, caller: Caller, include_unmanaged: bool = False
    ) -> UserNamesResponse:
        _require_admin(caller)
        names = await self._user_names(include_unmanaged)
        return UserNamesResponse(usernames=names, total_count=len(names))

    async def list_users(
        self, caller: Caller, page: int, page_size: int, include_unmanaged: bool = False
    ) -> UserListResponse:
        """One page of users; a user missing from the store (deleted meanwhile, or by hand)
        is left out of the page, though counted in ``total_count``."""
        _require_admin(caller)
        names = await self._user_names(include_unmanaged)
        total_pages = max(1, math.ceil(len(names) / page_size))
        chosen = names[(page - 1) * page_size : page * page_size]
        found = await _bounded(
            MAX_CONCURRENT_LOOKUPS, [partial(self._store.get_user, n) for n in chosen]
        )
        users = [u for u in found if u is not None]
        infos = await self._membership.groups(g for u in users for g in u.groups)
        summaries = [
            UserSummary(
                username=u.name,
                access_key=u.access_key,
                enabled=u.enabled,
                home_paths=self._layout.user_home_urls(u.name),
                groups=list(u.groups),
                policies=list(u.policies),
                total_policies=len(u.policies)
                + sum(len(info.policies) for g in u.groups if (info := infos.get(g)) is not None),
            )
            for u in users
        ]
        return UserListResponse(
            users=summaries,
            total_count=len(names),
            retrieved_count=len(summaries),
            page=page,
            page_size=page_size,
            total_pages=total_pages,
            has_next=page < total_pages,
            has_prev=page > 1,
        )

    async def create_user(self, caller: Caller, user: str) -> UserManagementResponse:
        """Provision (or repair) a user; the secret returned is the one stored and applied."""
        _require_admin(caller)
        validate_username(user)
        creds, created = await self._credentials.create_user(user, actor=caller.username)
        if not created:
            async with transaction(self._engine) as conn:
                await audit.record(
                    conn,
                    actor=caller.username,
                    action="user.create",
                    target=user,
                    details={"existing": True},
                )
        return await self._user_response(caller, creds, "create")

    async def rotate_user(self, caller: Caller, user: str) -> UserManagementResponse:
        """New secret for an existing user (404 for an unknown one, SPEC FIX).

        Existence is checked under the credential lock (inside ``rotate``), so a user deleted
        meanwhile is a 404, never re-created.
        """
        _require_admin(caller)
        validate_username(user)
        creds = await self._credentials.rotate(user, actor=caller.username, provision_missing=False)
        return await self._user_response(caller, creds, "rotate")

    async def adopt_user(self, caller: Caller, user: str) -> UserAdoptResponse:
        """Let the service manage a store user it did not create (docs/decisions.md).

        After this, logins and rotations of ``user`` set its secret like any other user's, so
        whoever held the old secret loses it at the next login. Idempotent: adopting a managed
        user changes nothing and answers ``adopted: false``. Runs under the credential lock,
        which ``delete_user`` holds, so a user being deleted cannot be adopted halfway.
        """
        _require_admin(caller)
        validate_username(user)
        async with self._credential_lock(user):
            await self._existing_user(user)
            async with transaction(self._engine) as conn:
                created = await managed_store.record(
                    conn, user, source=managed_store.ADOPTED, actor=caller.username
                )
                if created is not None:
                    await audit.record(
                        conn, actor=caller.username, action="user.adopt", target=user
                    )
                current = created or await managed_store.fetch(conn, user)
        assert current is not None  # recorded just now, or already there
        return UserAdoptResponse(
            username=user,
            adopted=created is not None,
            source=current.source,
            adopted_by=current.adopted_by,
            adopted_at=current.adopted_at,
            performed_by=caller.username,
            timestamp=_now(),
        )

    async def rotate_all(self, caller: Caller) -> RotateAllResponse:
        """Rotate every issued credential; one user's failure never stops the others.

        "Every issued credential" is every row of the credential cache: a store user without
        a row has no secret anyone was given, and gets a fresh one at its next login anyway.
        """
        _require_admin(caller)
        async with transaction(self._engine) as conn:
            names = await credential_store.usernames(conn)
        outage: list[str] = []
        skipped: list[str] = []

        async def rotate(user: str) -> str | None:
            if outage:
                # The store went away: stop here instead of failing every remaining user.
                skipped.append(user)
                return None
            try:
                await self._credentials.rotate(user, actor=caller.username, provision_missing=False)
            except ObjectStoreUnavailable as exc:
                outage.append(user)
                log.warning("rotate-all stopped: %s", exc.message)
                return exc.message
            except ServiceError as exc:
                log.warning("rotation of %s failed: %s", user, exc.message)
                return exc.message
            except Exception as exc:
                log.error("rotation of %s failed", user, exc_info=exc)
                return "internal error; see the service log"
            return None

        errors = await _bounded(MAX_CONCURRENT_ROTATIONS, [partial(rotate, n) for n in names])
        rotated = [n for n, e in zip(names, errors, strict=True) if e is None and n not in skipped]
        failures = [
            RotationFailure(username=n, error=e)
            for n, e in zip(names, errors, strict=True)
            if e is not None
        ]
        async with transaction(self._engine) as conn:
            await audit.record(
                conn,
                actor=caller.username,
                action="credentials.rotate_all",
                target="*",
                details={
                    "rotated": len(rotated),
                    "failed": [f.username for f in failures],
                    "not_rotated": len(skipped),
                },
            )
        return RotateAllResponse(
            total_count=len(names),
            rotated_count=len(rotated),
            failed_count=len(failures),
            rotated=rotated,
            failures=failures,
            complete=not skipped,
            not_rotated=sorted(skipped),
            message=(
                f"stopped: the object store became unavailable; {len(skipped)} credentials"
                " were not rotated (their old secrets still work); run again later"
                if skipped
                else "every issued credential was tried"
            ),
            performed_by=caller.username,
            timestamp=_now(),
        )

    def _user_prefixes(self, user: str) -> list[tuple[str, str]]:
        """(bucket, prefix) of everything a user owns. Each prefix ends in "/", so deleting
        ``bob`` never touches ``bobby``."""
        return [
            (self._layout.bucket, f"{self._layout.user_general_key(user)}/"),
            (self._layout.bucket, f"{self._layout.user_sql_key(user)}/"),
            (SPARK_LOGS_BUCKET, f"{SPARK_LOGS_PREFIX}/{user}/"),
        ]

    async def _resync(self, principals: Sequence[Principal]) -> list[Principal]:
        """Converge principals whose shares changed (rows bumped in the same transaction);
        returns those left pending for the reconciler."""
        return await self._enforcer.enforce(principals)

    async def _sweep_user_rows(self, user: str) -> list[Principal]:
        """Last step of a user deletion, once the store user is gone: drop share and steward
        rows naming the user that were committed while the deletion ran (a share or a
        stewardship checks that the user exists before it commits, and the user still did).
        Nothing can add such rows any more: every such call now finds the user missing."""
        async with transaction(self._engine) as conn:
            affected = await share_store.delete_involving_user(conn, user)
            stewardships = await tenant_store.remove_steward_everywhere(conn, user)
            # The store user is gone: a later store user of this name is not ours.
            await managed_store.forget(conn, user)
            await outbox.bump(conn, affected)
        if affected or stewardships:
            log.warning(
                "user %s: removed rows committed during its deletion (shares affecting %s,"
                " stewardships %s)",
                user,
                ", ".join(f"{k}:{n}" for k, n in affected) or "-",
                stewardships or "-",
            )
        return await self._resync(affected)

    async def delete_user(self, caller: Caller, user: str) -> ResourceDeleteResponse:
        """Delete a user and everything of theirs (SPEC FIX): group memberships, credentials,
        profile, steward rows, shares given and received (re-rendering the other side),
        policies, objects under their prefixes, then the store user itself."""
        _require_admin(caller)
        validate_username(user)
        async with self._credential_lock(user):
            found = await self._existing_user(user)
            await asyncio.gather(
                *(self._store.remove_group_members(g, [user]) for g in found.groups)
            )
            async with transaction(self._engine) as conn:
                await credential_store.remove(conn, user)
                await profiles.remove(conn, user)
                stewardships = await tenant_store.remove_steward_everywhere(conn, user)
                affected = await share_store.delete_involving_user(conn, user)
                await audit.record(
                    conn,
                    actor=caller.username,
                    action="user.delete",
                    target=user,
                    details={
                        "groups": list(found.groups),
                        "stewardships": stewardships,
                        "share_principals_affected": [f"{k}:{n}" for k, n in affected],
                    },
                )
                await outbox.bump(conn, affected)
                await outbox.leave_everything(conn, user=user)
            pending = await self._resync(affected)
            await self._policies.remove_user_policies(user)
            await asyncio.gather(
                *(self._store.delete_prefix(b, p) for b, p in self._user_prefixes(user))
            )
            await self._store.delete_user(user)
            pending += await self._sweep_user_rows(user)
        return ResourceDeleteResponse(
            resource_type="user",
            resource_name=user,
            message=f"User {user} deleted",
            performed_by=caller.username,
            timestamp=_now(),
            **state(pending),
        )

    # -- groups -----------------------------------------------------------------------------
    async def _existing_groups(self) -> dict[str, StoreGroup]:
        """Every group of the tenants the service knows (``g`` and ``g``ro) that exists in the
        store, by name, sorted; no ``list-groups`` (see ``tenants/register.py``)."""
        async with transaction(self._engine) as conn:
            bases = await group_register.candidates(conn)
        infos = await self._membership.groups(n for b in bases for n in (b, read_only_group(b)))
        return {n: i for n, i in sorted(infos.items()) if i is not None}

    async def group_names(self) -> GroupNamesResponse:
        names = list(await self._existing_groups())
        return GroupNamesResponse(group_names=names, total_count=len(names))

    async def list_groups(self) -> GroupListResponse:
        groups = [
            GroupInfo(group_name=n, members=list(i.members), member_count=len(i.members))
            for n, i in (await self._existing_groups()).items()
        ]
        return GroupListResponse(groups=groups, total_count=len(groups))

    async def create_group(self, caller: Caller, group: str) -> GroupManagementResponse:
        """Create ``g`` and ``g``ro with policies, markers and a tenant metadata row.

        Idempotent: for an existing group it repairs what is missing and changes no member.
        The creating admin is not made a member.
        """
        _require_admin(caller)
        validate_group_name(group, for_creation=True)
        twin = read_only_group(group)
        async with self._group_lock(group):
            rw, ro = await asyncio.gather(self._store.get_group(group), self._store.get_group(twin))
            existed = rw is not None
            # A name that is new in the store must not inherit share rows left from an earlier
            # group of that name. Under the group lock, where shares to ``g``/``g``ro check
            # existence and commit, so no share made to the new group can be swept.
            # ``globalusers`` is everyone, not a recyclable name: its rows are public shares.
            missing = [(share_store.GROUP, n) for n, i in ((group, rw), (twin, ro)) if i is None]
            if missing and group != GLOBAL_GROUP:
                async with transaction(self._engine) as conn:
                    stale = await share_store.delete_received(conn, missing)
                if stale:
                    log.warning("dropped %d stale share rows naming new group %s", stale, group)
            # Registered before the store creates it, so no listing can miss it (register.py).
            async with transaction(self._engine) as conn:
                await group_register.register(conn, group)
            await self._groups.ensure_group(group)
            async with transaction(self._engine) as conn:
                await tenant_store.create(conn, group, caller.username, {})
                await audit.record(
                    conn,
                    actor=caller.username,
                    action="group.create",
                    target=group,
                    details={"existing": existed},
                )
            info = await self._store.get_group(group)
        return self._group_response(caller, group, info, "create")

    async def add_member(self, caller: Caller, group: str, user: str) -> GroupManagementResponse:
        return await self._change_member(caller, group, user, add=True)

    async def remove_member(self, caller: Caller, group: str, user: str) -> GroupManagementResponse:
        return await self._change_member(caller, group, user, add=False)

    async def _change_member(
        self, caller: Caller, group: str, user: str, *, add: bool
    ) -> GroupManagementResponse:
        """Add or remove one member of exactly the group named (``g`` or ``g``ro)."""
        _require_admin(caller)
        validate_group_name(group)
        validate_username(user)
        async with self._group_lock(group):
            await self._existing_group(group)
            await self._existing_user(user)
            async with transaction(self._engine) as conn:
                intent = await outbox.intend(conn, group, user, outbox.IN if add else outbox.OUT)
                await audit.record(
                    conn,
                    actor=caller.username,
                    action="group.member.add" if add else "group.member.remove",
                    target=f"{group}/{user}",
                )
            pending = await self._enforcer.enforce([intent])
            try:
                info = await self._store.get_group(group)
            except ServiceError:
                info = None  # store down: the change is recorded (pending) all the same
        operation = "add_member" if add else "remove_member"
        return self._group_response(caller, group, info, operation, pending)

    async def delete_group(self, caller: Caller, group: str) -> ResourceDeleteResponse:
        """Delete ``g`` and ``g``ro (SPEC FIX: emptied first), the shares they received, their
        policies, the tenant's data and its metadata (stewards cascade)."""
        _require_admin(caller)
        validate_group_name(group)
        if group == GLOBAL_GROUP:
            raise GroupOperationError(f"'{GLOBAL_GROUP}' holds every user and cannot be deleted")
        if is_read_only_group(group):
            raise GroupOperationError(
                f"'{group}' is a read-only group; delete its base group instead"
            )
        twin = read_only_group(group)
        async with self._group_lock(group):
            rw, ro = await asyncio.gather(self._store.get_group(group), self._store.get_group(twin))
            if rw is None and ro is None:
                raise GroupNotFound(f"Group '{group}' not found")
            await asyncio.gather(
                *(
                    self._store.remove_group_members(name, list(info.members))
                    for name, info in ((group, rw), (twin, ro))
                    if info is not None
                )
            )
            async with transaction(self._engine) as conn:
                shares_removed = await share_store.delete_received_by_group(conn, group)
                shares_removed += await share_store.delete_received_by_group(conn, twin)
                stewards = [s.username for s in await tenant_store.stewards(conn, group)]
                await tenant_store.delete_metadata(conn, group)
                await outbox.leave_everything(conn, group=group)
                await outbox.leave_everything(conn, group=twin)
                await audit.record(
                    conn,
                    actor=caller.username,
                    action="group.delete",
                    target=group,
                    details={
                        "members": sorted(rw.members) if rw is not None else [],
                        "read_only_members": sorted(ro.members) if ro is not None else [],
                        "shares_removed": shares_removed,
                        "stewards_removed": stewards,
                    },
                )
            await asyncio.gather(
                self._policies.remove_group_policies(group),
                self._policies.remove_group_policies(twin),
            )
            await asyncio.gather(
                self._store.delete_prefix(
                    self._layout.bucket, f"{self._layout.tenant_general_key(group)}/"
                ),
                self._store.delete_prefix(
                    self._layout.bucket, f"{self._layout.tenant_sql_key(group)}/"
                ),
            )
            await asyncio.gather(self._store.delete_group(group), self._store.delete_group(twin))
            # Shares to ``g``/``g``ro check existence and commit under this lock, so normally
            # nothing is left; the sweep makes "no rows for a missing group" hold regardless.
            async with transaction(self._engine) as conn:
                late = await share_store.delete_received(
                    conn, [(share_store.GROUP, group), (share_store.GROUP, twin)]
                )
                await group_register.forget(conn, group)
            if late:
                log.warning("group %s: removed %d share rows added during deletion", group, late)
        return ResourceDeleteResponse(
            resource_type="group",
            resource_name=group,
            message=f"Group {group} and {twin} deleted",
            performed_by=caller.username,
            timestamp=_now(),
        )
