"""Sharing: share records are the truth, policies are re-rendered from them after commit.

Every change runs in this order: parse the path → check the caller owns it → check the targets
exist → one transaction writing the records, their audit rows and a bump of each affected
principal's outbox row → commit → converge each affected principal (``Enforcer``), which reads
the records *inside* that principal's advisory lock. Whoever holds a principal's lock last has
read every committed record, so no share is lost.

If enforcement cannot finish after the commit (store down, lock wait exceeded, lock lost) the
call answers 202 with ``enforcement: pending``: the records stand and the outbox row stays
pending until a replica's reconciler applies it.

A share to a group checks that the group exists and commits its record while holding the
group's lock (``group_lock:{base}``, the one ``delete_group`` holds), so it either commits
before the deletion sweeps the group's records or finds the group gone. A share to a user
cannot take such a lock (users are deleted under their credential lock, which logins hold);
``delete_user`` sweeps the user's records again once the store user is gone, and a user
created anew starts without records under its name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from minio_manager.audit import store as audit
from minio_manager.db.engine import transaction
from minio_manager.errors import (
    GovernanceViolation,
    GroupOperationError,
    ShareLimitExceeded,
    UserOperationError,
)
from minio_manager.governance.layout import GLOBAL_GROUP, Layout, read_only_group
from minio_manager.governance.naming import base_group_of, validate_group_name, validate_username
from minio_manager.governance.paths import (
    SharePath,
    home_owner_of,
    owner_home_of,
    parse_share_path,
)
from minio_manager.governance.share_bounds import bounded_write
from minio_manager.locks import LockManager
from minio_manager.objectstore.port import ObjectStore
from minio_manager.provisioning import outbox
from minio_manager.provisioning.groups import GroupProvisioner
from minio_manager.provisioning.membership import hold_group_lock
from minio_manager.provisioning.policy_sync import PolicySync
from minio_manager.provisioning.reconciler import Enforcer
from minio_manager.sharing import store
from minio_manager.sharing.store import GROUP, READ, USER, WRITE, Principal

log = logging.getLogger(__name__)

GRANT, REVOKE = "share.grant", "share.revoke"
MAKE_PUBLIC, MAKE_PRIVATE = "share.make_public", "share.make_private"
AUDIT_LIST_LIMIT = 100
"""make-private may remove thousands of records; the audit row lists this many, plus a count."""

_MAX_SHOWN = 80
T = TypeVar("T")


def _shown(name: str) -> str:
    return repr(name[:_MAX_SHOWN] + "...") if len(name) > _MAX_SHOWN else repr(name)


def _unique(names: Iterable[str]) -> list[str]:
    """Drop repeats, keep the caller's order (so answers list targets as they were asked)."""
    return list(dict.fromkeys(names))


@dataclass
class SharingOutcome:
    """Per-target results of share/unshare: who succeeded, and one message per failure."""

    path: SharePath
    users: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    pending: list[Principal] = field(default_factory=list)
    """Principals whose committed change is not enforced yet (the reconciler finishes it)."""

    @property
    def success_count(self) -> int:
        return len(self.users) + len(self.groups)

    def succeeded(self, principal: Principal) -> None:
        (self.users if principal[0] == USER else self.groups).append(principal[1])


PUBLIC_GROUPS = frozenset({GLOBAL_GROUP, read_only_group(GLOBAL_GROUP)})


@dataclass(frozen=True)
class PrivacyOutcome:
    """make-private's answer: the path, and the ancestors whose public shares still cover it.

    make-private removes the shares of the path and below, never above it (an ancestor is a
    different, broader decision of the owner), so the path stays readable by everyone while
    ``public_via`` is not empty.
    """

    path: SharePath
    public_via: list[SharePath]

    @property
    def is_public(self) -> bool:
        return bool(self.public_via)


@dataclass(frozen=True)
class AccessInfo:
    path: SharePath
    users: list[str]
    groups: list[str]

    @property
    def public(self) -> bool:
        return not PUBLIC_GROUPS.isdisjoint(self.groups)


class SharingService:
    def __init__(
        self,
        engine: AsyncEngine,
        store_: ObjectStore,
        layout: Layout,
        policies: PolicySync,
        groups: GroupProvisioner,
        locks: LockManager,
        *,
        lock_wait_seconds: float,
        lock_expiry_seconds: float,
        enforcer: Enforcer,
        concurrency: int = 16,
    ) -> None:
        self._enforcer = enforcer
        self._engine = engine
        self._store = store_
        self._layout = layout
        self._policies = policies
        self._groups = groups
        self._locks = locks
        self._lock_wait = lock_wait_seconds
        self._lock_expiry = lock_expiry_seconds
        self._concurrency = concurrency

    # -- checks -----------------------------------------------------------------------------
    def _owned_path(self, raw_path: str, actor: str) -> SharePath:
        """Parse (400 on a malformed path), then require the path be in the actor's home."""
        path = parse_share_path(raw_path)
        if not owner_home_of(path, self._layout, actor):
            homes = " or ".join(self._layout.user_home_urls(actor))
            raise GovernanceViolation(
                f"Only the owner of a path may change its sharing; {path.url} is not inside"
                f" your home ({homes})"
            )
        return path

    def _writable_share(self, path: SharePath, actor: str) -> None:
        """Refuse a write share of which the owner could write nothing themselves.

        A write share is rendered bounded by the owner's rights (``share_bounds``); one that
        would come out read-only (e.g. ``users-sql-warehouse/alice/tmp``, outside alice's
        ``u_alice__*`` databases) is refused, so the answer never claims a write that the store
        will not allow. The warehouse root itself is accepted: it renders as read of the root
        plus write of the governed databases, which is exactly what the owner has.
        """
        bounded = bounded_write(path.grant(write=True), self._layout.user_home_grants(actor))
        if not any(grant.write for grant in bounded):
            namespace = self._layout.user_namespace_prefix(actor)
            raise GovernanceViolation(
                f"You cannot give write access to {path.url}: you can write only inside your"
                f" {namespace}* databases there. Share it with permission 'read', or share a"
                f" database path ({self._layout.user_sql_warehouse_url(actor)}{namespace}...)"
            )

    async def _bounded(self, calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        """Run calls concurrently, at most ``concurrency`` at a time (the store and the DB
        pool are shared with every other request)."""
        gate = asyncio.Semaphore(self._concurrency)

        async def one(call: Callable[[], Awaitable[T]]) -> T:
            async with gate:
                return await call()

        return list(await asyncio.gather(*(one(c) for c in calls)))

    async def _exists(self, principal: Principal) -> bool:
        kind, name = principal
        if kind == USER:
            return await self._store.get_user(name) is not None
        return await self._store.get_group(name) is not None

    def _name_problem(self, principal: Principal, actor: str) -> str | None:
        """Why a target name cannot be used at all (bad name, the owner), else None."""
        kind, name = principal
        try:
            if kind == USER:
                validate_username(name)
            else:
                validate_group_name(name)
        except (UserOperationError, GroupOperationError) as exc:
            return exc.message
        if kind == USER and name == actor:
            return f"user {_shown(name)}: you own this path already"
        return None

    def _valid(
        self, actor: str, users: Iterable[str], groups: Iterable[str], outcome: SharingOutcome
    ) -> list[Principal]:
        """Targets with usable names, in the caller's order; bad names become errors."""
        requested = [(USER, u) for u in _unique(users)] + [(GROUP, g) for g in _unique(groups)]
        valid: list[Principal] = []
        for principal in requested:
            problem = self._name_problem(principal, actor)
            if problem is None:
                valid.append(principal)
            else:
                outcome.errors.append(problem)
        return valid

    async def _existing(self, valid: Sequence[Principal]) -> dict[Principal, bool]:
        """Whether each target exists in the store (asked concurrently)."""
        found = await self._bounded([partial(self._exists, p) for p in valid])
        return dict(zip(valid, found, strict=True))

    async def _vet(
        self, actor: str, users: Iterable[str], groups: Iterable[str], outcome: SharingOutcome
    ) -> tuple[list[Principal], dict[Principal, bool]]:
        """Valid targets (bad names become errors) and whether each exists in the store."""
        valid = self._valid(actor, users, groups, outcome)
        return valid, await self._existing(valid)

    @asynccontextmanager
    async def _group_locks(self, targets: Iterable[Principal]) -> AsyncIterator[None]:
        """Hold the lock of every group pair among ``targets``, taken in name order so two
        calls naming the same groups cannot deadlock."""
        bases = sorted({base_group_of(name) for kind, name in targets if kind == GROUP})
        async with AsyncExitStack() as stack:
            for base in bases:
                await stack.enter_async_context(
                    hold_group_lock(
                        self._locks,
                        base,
                        wait_seconds=self._lock_wait,
                        expiry_seconds=self._lock_expiry,
                    )
                )
            yield

    # -- enforcement ------------------------------------------------------------------------
    async def apply(self, principals: Iterable[Principal]) -> list[Principal]:
        """Converge each principal whose records were just committed (its outbox row was
        bumped in that transaction); returns those left pending for the reconciler. A
        principal deleted meanwhile renders nothing and counts as applied."""
        return await self._enforcer.enforce(principals)

    # -- operations -------------------------------------------------------------------------
    async def share(
        self,
        actor: str,
        raw_path: str,
        users: Iterable[str],
        groups: Iterable[str],
        level: str,
    ) -> SharingOutcome:
        path = self._owned_path(raw_path, actor)
        if level == WRITE:
            self._writable_share(path, actor)
        outcome = SharingOutcome(path)
        valid = self._valid(actor, users, groups, outcome)
        # Existence check and commit under the target groups' locks: a concurrent
        # delete_group either has swept its records already (we see the group gone) or waits
        # for our commit and then sweeps our record too. No orphan record either way.
        async with self._group_locks(valid):
            exists = await self._existing(valid)
            targets: list[Principal] = []
            for principal in valid:
                if exists[principal]:
                    targets.append(principal)
                else:
                    outcome.errors.append(
                        f"{principal[0]} {_shown(principal[1])}: no such {principal[0]}"
                    )
            if targets:
                await self._grant(actor, path, targets, level, action=GRANT)
        for principal in targets:
            outcome.succeeded(principal)
        outcome.pending = await self.apply(targets)
        return outcome

    async def _grant(
        self, actor: str, path: SharePath, targets: Sequence[Principal], level: str, *, action: str
    ) -> None:
        async with transaction(self._engine) as conn:
            previous = await store.grant(
                conn, owner=actor, path=path, targets=targets, level=level, actor=actor
            )
            await self._within_attachment_limit(conn, targets)
            for (kind, name), before in previous.items():
                await audit.record(
                    conn,
                    actor=actor,
                    action=action,
                    target=path.url,
                    details={
                        "target_type": kind,
                        "target_name": name,
                        "level": level,
                        "previous_level": before,
                    },
                )
            await outbox.bump(conn, targets)

    async def _within_attachment_limit(
        self, conn: AsyncConnection, targets: Sequence[Principal]
    ) -> None:
        """Refuse (409, the transaction rolled back) a share some target's store could not
        enforce: on the AWS IAM API a user or group holds at most 10 attached policies, and a
        recorded share that needs an 11th would stay pending for ever (docs/backends.md)."""
        limit = self._store.policy_max_attachments
        if limit is None:
            return
        over = [
            f"{kind} {_shown(name)}"
            for kind, name in targets
            if await self._policies.attachments_needed(conn, kind, name) > limit
        ]
        if over:
            raise ShareLimitExceeded(
                f"{', '.join(over)} would need more than {limit} attached policies, the object"
                " store's limit; nothing was shared (unshare something first, or raise"
                " POLICY_MAX_BYTES where the store takes larger documents)"
            )

    async def unshare(
        self, actor: str, raw_path: str, users: Iterable[str], groups: Iterable[str]
    ) -> SharingOutcome:
        path = self._owned_path(raw_path, actor)
        outcome = SharingOutcome(path)
        valid, exists = await self._vet(actor, users, groups, outcome)
        async with transaction(self._engine) as conn:
            removed = await store.revoke(conn, path=path, targets=valid)
            for record in removed:
                await audit.record(
                    conn,
                    actor=actor,
                    action=REVOKE,
                    target=path.url,
                    details={
                        "target_type": record.target_type,
                        "target_name": record.target_name,
                        "previous_level": record.level,
                    },
                )
            await outbox.bump(conn, [r.principal for r in removed])
        had_record = {r.principal for r in removed}
        for principal in valid:
            # Removing a share that is not there is a success (the caller's goal holds), but
            # only for a principal that exists: a typo in a name should not pass silently.
            if principal in had_record or exists[principal]:
                outcome.succeeded(principal)
            else:
                outcome.errors.append(
                    f"{principal[0]} {_shown(principal[1])}: no such {principal[0]}"
                )
        outcome.pending = await self.apply(had_record)
        return outcome

    async def make_public(self, actor: str, raw_path: str) -> tuple[SharePath, list[Principal]]:
        """Share read-only with ``globalusers`` (every user is a member)."""
        path = self._owned_path(raw_path, actor)
        await self._groups.ensure_global_groups()
        target: Principal = (GROUP, GLOBAL_GROUP)
        await self._grant(actor, path, [target], READ, action=MAKE_PUBLIC)
        return path, await self.apply([target])

    async def make_private(
        self, actor: str, raw_path: str
    ) -> tuple[PrivacyOutcome, list[Principal]]:
        """Remove every share of the path and of every path below it; say truthfully whether a
        public share of an ancestor still makes it readable by everyone. Also returns the
        principals whose policies are still pending."""
        path = self._owned_path(raw_path, actor)
        async with transaction(self._engine) as conn:
            removed = await store.revoke_under(conn, path)
            still = await store.covering(conn, path)
            await audit.record(
                conn,
                actor=actor,
                action=MAKE_PRIVATE,
                target=path.url,
                details={
                    "removed_count": len(removed),
                    "removed": [
                        {
                            "path": SharePath(r.bucket, r.key).url,
                            "target_type": r.target_type,
                            "target_name": r.target_name,
                        }
                        for r in removed[:AUDIT_LIST_LIMIT]
                    ],
                },
            )
            await outbox.bump(conn, [r.principal for r in removed])
        pending = await self.apply([r.principal for r in removed])
        public_via = sorted(
            {
                SharePath(r.bucket, r.key)
                for r in still
                if r.target_type == GROUP and r.target_name in PUBLIC_GROUPS
            }
        )
        return PrivacyOutcome(path, public_via), pending

    async def access_info(self, actor: str, is_admin: bool, raw_path: str) -> AccessInfo:
        """Who can read all of the path: its owner, and holders of a share on it or above it."""
        path = parse_share_path(raw_path)
        if not (is_admin or owner_home_of(path, self._layout, actor)):
            raise GovernanceViolation(
                f"Only the owner of {path.url} or an administrator may see who can access it"
            )
        async with transaction(self._engine) as conn:
            records = await store.covering(conn, path)
        users = {r.target_name for r in records if r.target_type == USER}
        owner = home_owner_of(path, self._layout)
        if owner is not None:
            users.add(owner)
        groups = {r.target_name for r in records if r.target_type == GROUP}
        return AccessInfo(path, sorted(users), sorted(groups))
