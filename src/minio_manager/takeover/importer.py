"""Take over a deployment of the reference service: shares, managed users, secrets.

The reference kept shares only inside MinIO policy text. This reads every attached user and
group policy (and the reference's ``-shadow-`` leftovers), turns what lies beyond each
principal's template into share records (``takeover/interpret.py``), and — with ``apply`` —
records them, marks the reference's users as managed, renders every imported principal's
policies from the records through the policy outbox (as every other change does), removes
the shadow leftovers and, if asked, rotates the short secrets the reference issued. Without
``apply`` it writes nothing at all (not even the schema migration), so a dry run is safe
against a live reference deployment.

Running it again finds what it recorded the first time and adds nothing. Secrets are never
read into this process: their length is measured inside PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from minio_manager.audit import store as audit
from minio_manager.bootstrap import Services
from minio_manager.credentials.secrets import SECRET_LENGTH
from minio_manager.db.engine import transaction
from minio_manager.db.tables import shares as shares_table
from minio_manager.errors import InternalError, ServiceError
from minio_manager.governance.layout import (
    Grant,
    group_policy_name,
    user_home_policy_name,
    user_system_policy_name,
)
from minio_manager.governance.policies import is_overflow_name
from minio_manager.objectstore.errors import StoreRejected
from minio_manager.objectstore.port import StoreGroup, StoreUser
from minio_manager.provisioning import outbox
from minio_manager.takeover.interpret import (
    GROUP,
    PUBLIC_GROUPS,
    USER,
    Finding,
    ImportedShare,
    interpret_policy,
    merge_shares,
    shadow_base,
)

log = logging.getLogger(__name__)

ACTOR = "mms-import"
IMPORT_ACTION = "reference.import"
SHARE_IMPORT_ACTION = "share.import"
FOREIGN_POLICY = "foreign_policy"
MISSING_POLICY = "missing_policy"
CONCURRENCY = 16
GOVERNANCE_PREFIXES = ("user-home-policy-", "user-system-policy-", "group-policy-")
T = TypeVar("T")


@dataclass(frozen=True)
class ImportOptions:
    apply: bool = False
    rotate_short_secrets: bool = False
    only_prefix: str | None = None
    """Limit the import to principals whose name starts with this (plus ``globalusers`` and
    ``globalusersro``): for a trial run on part of a deployment, or tests on a shared store."""


@dataclass
class ShadowPolicy:
    name: str
    attached_to: list[str] = field(default_factory=list)
    deleted: bool = False
    error: str | None = None


@dataclass
class ImportReport:
    applied: bool
    users_scanned: int = 0
    groups_scanned: int = 0
    policies_read: int = 0
    shares: list[ImportedShare] = field(default_factory=list)
    new_shares: list[ImportedShare] = field(default_factory=list)
    level_conflicts: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    shadows: list[ShadowPolicy] = field(default_factory=list)
    managed_table: bool = False
    managed_marked: list[str] = field(default_factory=list)
    managed_candidates: list[str] = field(default_factory=list)
    unmanaged_store_users: list[str] = field(default_factory=list)
    credentials_without_store_user: list[str] = field(default_factory=list)
    short_secrets: list[str] = field(default_factory=list)
    secrets_action: str = "kept"
    rotated: list[str] = field(default_factory=list)
    rotation_failures: list[str] = field(default_factory=list)
    users_rendered: int = 0
    groups_rendered: int = 0
    render_errors: list[str] = field(default_factory=list)

    @property
    def narrowings(self) -> list[Finding]:
        return [f for f in self.findings if f.narrowing]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (no secret is ever part of a report)."""

        def share(s: ImportedShare) -> dict[str, str]:
            return {
                "path": s.url,
                "target_type": s.target_type,
                "target_name": s.target_name,
                "level": s.level,
                "owner": s.owner,
            }

        def finding(f: Finding) -> dict[str, Any]:
            return {
                "target_type": f.target_type,
                "target_name": f.target_name,
                "policy": f.policy,
                "kind": f.kind,
                "detail": f.detail,
                "narrowing": f.narrowing,
            }

        return {
            "mode": "apply" if self.applied else "dry-run",
            "scanned": {
                "users": self.users_scanned,
                "groups": self.groups_scanned,
                "policies": self.policies_read,
            },
            "shares": {
                "found": len(self.shares),
                "new": len(self.new_shares),
                "already_recorded": len(self.shares) - len(self.new_shares),
                "items": [share(s) for s in self.shares],
                "new_items": [share(s) for s in self.new_shares],
                "level_conflicts": self.level_conflicts,
            },
            "narrowings": [finding(f) for f in self.narrowings],
            "not_interpreted_without_loss": [finding(f) for f in self.findings if not f.narrowing],
            "shadow_policies": [
                {
                    "name": s.name,
                    "attached_to": s.attached_to,
                    "deleted": s.deleted,
                    "error": s.error,
                }
                for s in self.shadows
            ],
            "managed_users": {
                "table_present": self.managed_table,
                "candidates": len(self.managed_candidates),
                "newly_marked": self.managed_marked,
                "store_users_left_unmanaged": self.unmanaged_store_users,
            },
            "credentials_without_store_user": self.credentials_without_store_user,
            "secrets": {
                "short_count": len(self.short_secrets),
                "short_users": self.short_secrets,
                "action": self.secrets_action,
                "rotated": self.rotated,
                "rotation_failures": self.rotation_failures,
            },
            "rendered": {
                "users": self.users_rendered,
                "groups": self.groups_rendered,
                "errors": self.render_errors,
            },
        }


async def _bounded(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(c) for c in calls)))


def _principal_of_policy(name: str) -> str | None:
    for prefix in GOVERNANCE_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return None


async def _table_exists(conn: AsyncConnection, table: str) -> bool:
    found = await conn.execute(text("SELECT to_regclass(:t)"), {"t": f"public.{table}"})
    return found.scalar() is not None


class ReferenceImporter:
    """One import run over the services of this deployment (``services.build_services``)."""

    def __init__(self, services: Services, options: ImportOptions) -> None:
        self._services = services
        self._store = services.store
        self._layout = services.layout
        self._options = options
        self._key = services.settings.mms_db_encryption_key.get_secret_value()

    def _in_scope(self, name: str) -> bool:
        prefix = self._options.only_prefix
        return prefix is None or name.startswith(prefix) or name in PUBLIC_GROUPS

    # -- reading ----------------------------------------------------------------------------
    def _user_template(self, user: str) -> list[Grant]:
        return [*self._layout.user_home_grants(user), *self._layout.user_system_grants(user)]

    @staticmethod
    def _owned_by(bases: Sequence[str], policy: str) -> bool:
        """Whether ``policy`` (a shadow or an overflow document included) renders ``bases``."""
        name = shadow_base(policy) or policy
        return any(name == base or is_overflow_name(base, name) for base in bases)

    async def _read_principal(
        self,
        report: ImportReport,
        target_type: str,
        name: str,
        attached: Sequence[str],
        bases: Sequence[str],
        template: Sequence[Grant],
    ) -> list[ImportedShare]:
        found: list[ImportedShare] = []
        ours = [p for p in attached if self._owned_by(bases, p)]
        for policy in attached:
            if policy not in ours:
                report.findings.append(
                    Finding(
                        target_type,
                        name,
                        policy,
                        FOREIGN_POLICY,
                        f"attached policy {policy} is not rendered by this service and is"
                        " detached when the principal's policies are rendered",
                    )
                )
        documents = await asyncio.gather(*(self._store.get_policy(p) for p in ours))
        report.policies_read += len(ours)
        for policy, document in zip(ours, documents, strict=True):
            if document is None:
                report.findings.append(
                    Finding(target_type, name, policy, MISSING_POLICY, "attached but not found")
                )
                continue
            result = interpret_policy(
                document,
                target_type=target_type,
                target_name=name,
                policy=policy,
                template=template,
                layout=self._layout,
            )
            found += result.shares
            report.findings += result.findings
        return found

    async def _read_user(self, report: ImportReport, info: StoreUser) -> list[ImportedShare]:
        home, system = user_home_policy_name(info.name), user_system_policy_name(info.name)
        if not any(self._owned_by([home], p) for p in info.policies):
            return []  # not a user the reference provisioned: left alone
        report.managed_candidates.append(info.name)
        return await self._read_principal(
            report, USER, info.name, info.policies, [home, system], self._user_template(info.name)
        )

    async def _read_group(self, report: ImportReport, info: StoreGroup) -> list[ImportedShare]:
        template = self._services.policies.group_template(info.name)
        return await self._read_principal(
            report, GROUP, info.name, info.policies, [group_policy_name(info.name)], template
        )

    async def _census(
        self, report: ImportReport
    ) -> tuple[list[StoreUser], list[StoreGroup], list[str]]:
        users, groups, policies = await asyncio.gather(
            self._store.list_users(), self._store.list_groups(), self._store.list_policies()
        )
        users = [u for u in users if self._in_scope(u)]
        groups = [g for g in groups if self._in_scope(g)]
        user_infos = await _bounded([partial(self._store.get_user, u) for u in users])
        group_infos = await _bounded([partial(self._store.get_group, g) for g in groups])
        found_users = [u for u in user_infos if u is not None]
        found_groups = [g for g in group_infos if g is not None]
        report.users_scanned, report.groups_scanned = len(found_users), len(found_groups)
        shadows = [
            p
            for p in policies
            if (base := shadow_base(p)) is not None
            and (owner := _principal_of_policy(base)) is not None
            and self._in_scope(owner)
        ]
        return found_users, found_groups, shadows

    async def _credential_rows(self) -> dict[str, int]:
        """username → secret length, measured in PostgreSQL (the secret never leaves it)."""
        query = text(
            "SELECT username, length(pgp_sym_decrypt(secret_key, :key)) AS n"
            " FROM user_credentials ORDER BY username"
        )
        async with transaction(self._services.engine) as conn:
            if not await _table_exists(conn, "user_credentials"):
                return {}
            try:
                rows = await conn.execute(query, {"key": self._key})
            except DBAPIError:
                raise InternalError(
                    "cached secrets cannot be decrypted with MMS_DB_ENCRYPTION_KEY; use the key"
                    " the reference service used"
                ) from None
            return {r.username: int(r.n) for r in rows if self._in_scope(r.username)}

    async def _recorded(self, found: Sequence[ImportedShare]) -> dict[tuple[str, ...], str]:
        """Levels already recorded for the found (path, target) pairs."""
        async with transaction(self._services.engine) as conn:
            if not await _table_exists(conn, "shares"):
                return {}
            rows = await conn.execute(
                text("SELECT bucket, key, target_type, target_name, level FROM shares")
            )
            wanted = {(s.bucket, s.key, s.target_type, s.target_name) for s in found}
            return {
                (r.bucket, r.key, r.target_type, r.target_name): r.level
                for r in rows
                if (r.bucket, r.key, r.target_type, r.target_name) in wanted
            }

    async def plan(self) -> tuple[ImportReport, list[StoreUser], list[StoreGroup]]:
        """Everything a run would do, without writing anything."""
        report = ImportReport(applied=self._options.apply)
        users, groups, shadow_names = await self._census(report)
        found: list[ImportedShare] = []
        for batch in await _bounded(
            [partial(self._read_user, report, u) for u in users]
            + [partial(self._read_group, report, g) for g in groups]
        ):
            found += batch
        report.shares = merge_shares(found)
        recorded = await self._recorded(report.shares)
        for share in report.shares:
            level = recorded.get((share.bucket, share.key, share.target_type, share.target_name))
            if level is None:
                report.new_shares.append(share)
            elif level != share.level:
                report.level_conflicts.append(
                    f"{share.target_type} {share.target_name} on {share.url}: recorded"
                    f" {level}, reference policy grants {share.level}; the record is kept"
                )
        attachments: dict[str, list[str]] = {}
        for user in users:
            for policy in user.policies:
                attachments.setdefault(policy, []).append(f"user:{user.name}")
        for group in groups:
            for policy in group.policies:
                attachments.setdefault(policy, []).append(f"group:{group.name}")
        report.shadows = [ShadowPolicy(n, attachments.get(n, [])) for n in sorted(shadow_names)]
        credentials = await self._credential_rows()
        store_users = {u.name for u in users}
        report.credentials_without_store_user = sorted(set(credentials) - store_users)
        report.unmanaged_store_users = sorted(
            store_users - set(report.managed_candidates) - set(credentials)
        )
        report.managed_candidates = sorted(set(report.managed_candidates) | set(credentials))
        report.short_secrets = sorted(u for u, n in credentials.items() if n < SECRET_LENGTH)
        rotate = self._options.rotate_short_secrets and bool(report.short_secrets)
        report.secrets_action = (
            ("rotated" if self._options.apply else "would rotate")
            if rotate
            else ("kept" if self._options.apply else "would keep")
        )
        report.findings.sort()
        return report, users, groups

    # -- writing ----------------------------------------------------------------------------
    async def _record(self, report: ImportReport, targets: Sequence[tuple[str, str]]) -> None:
        """Share rows, their audit rows, the managed marks and an outbox bump of every
        principal to render: one transaction, so a crash after it leaves the rendering to the
        reconciler instead of losing it."""
        async with transaction(self._services.engine) as conn:
            new: list[ImportedShare] = []
            for share in report.new_shares:
                stmt = (
                    insert(shares_table)
                    .values(
                        owner=share.owner,
                        bucket=share.bucket,
                        key=share.key,
                        target_type=share.target_type,
                        target_name=share.target_name,
                        level=share.level,
                        created_by=ACTOR,
                    )
                    .on_conflict_do_nothing(constraint="uq_shares_grant")
                    .returning(shares_table.c.id)
                )
                if (await conn.execute(stmt)).first() is not None:
                    new.append(share)
                    await audit.record(
                        conn,
                        actor=ACTOR,
                        action=SHARE_IMPORT_ACTION,
                        target=share.url,
                        details={
                            "target_type": share.target_type,
                            "target_name": share.target_name,
                            "level": share.level,
                            "owner": share.owner,
                        },
                    )
            report.new_shares = new
            await outbox.bump(conn, targets)
            report.managed_table = await _table_exists(conn, "managed_users")
            if report.managed_table and report.managed_candidates:
                marked = await conn.execute(
                    text(
                        "INSERT INTO managed_users (username, source, adopted_by)"
                        " SELECT unnest(CAST(:names AS text[])), 'adopted', :actor"
                        " ON CONFLICT (username) DO NOTHING RETURNING username"
                    ),
                    {"names": report.managed_candidates, "actor": ACTOR},
                )
                report.managed_marked = sorted(r.username for r in marked)
            await audit.record(
                conn,
                actor=ACTOR,
                action=IMPORT_ACTION,
                target="*",
                details={
                    "shares_found": len(report.shares),
                    "shares_new": len(new),
                    "narrowings": len(report.narrowings),
                    "managed_marked": len(report.managed_marked),
                    "short_secrets": len(report.short_secrets),
                    "secrets_action": report.secrets_action,
                },
            )

    @staticmethod
    def _render_targets(
        report: ImportReport, users: Sequence[StoreUser], groups: Sequence[StoreGroup]
    ) -> list[tuple[str, str]]:
        """Every imported principal present in the store: the reference's users, every share
        target, every group."""
        present_users = {u.name for u in users}
        present_groups = {g.name for g in groups}
        wanted_users = set(report.managed_candidates)
        wanted_users |= {s.target_name for s in report.shares if s.target_type == USER}
        wanted_groups = present_groups | {
            s.target_name for s in report.shares if s.target_type == GROUP
        }
        targets = [(USER, u) for u in sorted(wanted_users & present_users)]
        return targets + [(GROUP, g) for g in sorted(wanted_groups & present_groups)]

    async def _render(self, report: ImportReport, targets: Sequence[tuple[str, str]]) -> None:
        """Converge every imported principal (their outbox rows were bumped with the records);
        a principal that cannot be rendered now stays pending for the service's reconciler."""
        pending = await self._services.enforcer.enforce(targets)
        report.render_errors = [
            f"{kind} {name}: not rendered yet; left pending for the service's reconciler"
            for kind, name in pending
        ]
        report.users_rendered = sum(1 for kind, _ in targets if kind == USER)
        report.groups_rendered = len(targets) - report.users_rendered
        report.users_rendered -= sum(1 for kind, _ in pending if kind == USER)
        report.groups_rendered -= sum(1 for kind, _ in pending if kind == GROUP)

    async def _drop_shadows(self, report: ImportReport) -> None:
        """Shadow copies are detached by rendering; delete them (MinIO refuses attached ones)."""
        for shadow in report.shadows:
            try:
                await self._store.delete_policy(shadow.name)
                shadow.deleted = True
            except StoreRejected as exc:
                shadow.error = f"not deleted: {exc.code}"

    async def _rotate(self, report: ImportReport) -> None:
        credentials = self._services.credentials
        for user in report.short_secrets:
            try:
                await credentials.rotate(user, actor=ACTOR, provision_missing=False)
                report.rotated.append(user)
            except ServiceError as exc:
                report.rotation_failures.append(f"{user}: {exc.message}")

    async def run(self) -> ImportReport:
        report, users, groups = await self.plan()
        if not self._options.apply:
            async with transaction(self._services.engine) as conn:
                report.managed_table = await _table_exists(conn, "managed_users")
            return report
        targets = self._render_targets(report, users, groups)
        await self._record(report, targets)
        await self._render(report, targets)
        await self._drop_shadows(report)
        if self._options.rotate_short_secrets:
            await self._rotate(report)
        return report
