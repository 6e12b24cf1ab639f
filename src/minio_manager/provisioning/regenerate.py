"""Re-render every principal's policies from templates + share records, and detect drift.

Policies are a projection of PostgreSQL state, so "regenerate" is simply ``PolicySync`` run
for everyone with ``repair``: every document is rendered from the records and compared with the
store's current copy, and written when it is missing or differs (likewise the attachments).
It is idempotent and can only restore shares (records are never touched); a store that already
agrees costs reads, not IAM writes, which MinIO applies one at a time (issue 12), and a
principal that provably agrees skips its converge transaction too (``agreement.py``: records
read for 128 principals at a time). The same set of principals is compared document by
document for the drift report.

Who counts as a principal:
- users: every user the service manages (``managed_users``, cached credentials) and every user
  holding a share record, all from PostgreSQL: MinIO seals its ``list-users`` answer with
  Argon2id (64 MiB per decryption), so the store is never asked for its user list; a store
  user the service does not manage is not its to render (docs/decisions.md);
- groups: every store group (both ``g`` and ``g``ro) and every group holding a share record.
A principal known only from PostgreSQL that is absent from the store is reported as a
failure, not created: creating users is provisioning's job, not a repair's. For users that
is found while rendering (``user-info`` says 404), not by a census of the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from minio_manager.audit import store as audit
from minio_manager.db.engine import transaction
from minio_manager.errors import ServiceError
from minio_manager.governance.policies import canonical_document
from minio_manager.objectstore.port import ObjectStore
from minio_manager.provisioning import managed as managed_store
from minio_manager.provisioning import outbox
from minio_manager.provisioning.agreement import AgreementCheck
from minio_manager.provisioning.policy_sync import PolicySync
from minio_manager.sharing import store as share_store
from minio_manager.sharing.store import GROUP, USER, Principal

log = logging.getLogger(__name__)

REGENERATE_ACTION = "policies.regenerate"
AUDIT_LIST_LIMIT = 100
AGREEMENT_CHUNK = 128  # principals whose records one agreement check reads at once
CHUNKS_IN_FLIGHT = 3
T = TypeVar("T")


@dataclass(frozen=True)
class PrincipalError:
    resource_type: str
    resource_name: str
    error: str


@dataclass
class RegenerateReport:
    users_total: int = 0
    groups_total: int = 0
    users_updated: int = 0
    groups_updated: int = 0
    errors: list[PrincipalError] = field(default_factory=list)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Drift:
    resource_type: str
    resource_name: str
    problems: list[str]


@dataclass
class DriftReport:
    principals_checked: int = 0
    drifted: list[Drift] = field(default_factory=list)
    pending: list[Drift] = field(default_factory=list)
    errors: list[PrincipalError] = field(default_factory=list)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class _Census:
    """The principals to render, and those PostgreSQL names that the store lacks."""

    present: list[Principal]
    missing: list[Principal]


ABSENT = "known to the service but absent from the object store"


class _Absent(Exception):
    """A principal the records name that the store does not have (reported, not created)."""


def _describe(exc: Exception) -> str:
    """An error text for the report: service errors are written for callers; others are not."""
    if isinstance(exc, _Absent):
        return ABSENT
    return exc.message if isinstance(exc, ServiceError) else f"unexpected {type(exc).__name__}"


class PolicyRegenerator:
    def __init__(
        self,
        engine: AsyncEngine,
        store: ObjectStore,
        policies: PolicySync,
        *,
        concurrency: int = 16,
    ) -> None:
        self._engine = engine
        self._store = store
        self._policies = policies
        self._concurrency = concurrency
        self._agreement = AgreementCheck(engine, store, policies)

    async def _bounded(self, calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        """Bounded fan-out: a big deployment must not open thousands of admin calls at once."""
        gate = asyncio.Semaphore(self._concurrency)

        async def one(call: Callable[[], Awaitable[T]]) -> T:
            async with gate:
                return await call()

        return list(await asyncio.gather(*(one(c) for c in calls)))

    async def _census(self) -> _Census:
        """Users are all in ``present``: whether each exists is learnt while rendering it."""
        async with transaction(self._engine) as conn:
            managed = set(await managed_store.usernames(conn))
            holders = await share_store.principals(conn)
        store_groups = await self._store.list_groups()
        wanted_users = managed | {name for kind, name in holders if kind == USER}
        wanted_groups = set(store_groups) | {name for kind, name in holders if kind == GROUP}
        groups_present = set(store_groups)
        present = [(USER, u) for u in sorted(wanted_users)]
        present += [(GROUP, g) for g in sorted(wanted_groups & groups_present)]
        missing = [(GROUP, g) for g in sorted(wanted_groups - groups_present)]
        return _Census(present, missing)

    @staticmethod
    def _missing_errors(missing: Sequence[Principal]) -> list[PrincipalError]:
        return [PrincipalError(kind, name, ABSENT) for kind, name in missing]

    async def _sync(self, principal: Principal) -> Exception | None:
        kind, name = principal
        try:
            if kind == USER:
                # A user that exists gets at least its home and system policies attached;
                # nothing is attached (and nothing written) when the store has no such user.
                if not await self._policies.sync_user(name, repair=True):
                    return _Absent()
            else:
                await self._policies.sync_group(name, repair=True)
        except Exception as exc:
            log.warning("regenerating %s %s failed: %s", kind, name, _describe(exc))
            return exc
        return None

    async def _repair_all(self, principals: Sequence[Principal]) -> list[Exception | None]:
        """Repair every principal: a chunk at a time, those the agreement check proves to
        agree are done; the others converge (``repair``). Up to ``CHUNKS_IN_FLIGHT`` chunks
        at once, so one chunk's slowest principal does not idle the others."""
        gate = asyncio.Semaphore(self._concurrency)
        chunks = asyncio.Semaphore(CHUNKS_IN_FLIGHT)
        outcome: dict[Principal, Exception | None] = {}

        async def repair(principal: Principal) -> None:
            async with gate:
                outcome[principal] = await self._sync(principal)

        async def chunk(part: Sequence[Principal]) -> None:
            async with chunks:
                agreed = await self._agreement.agreeing(part, gate)
                outcome.update(dict.fromkeys(agreed))
                await asyncio.gather(*(repair(p) for p in part if p not in agreed))

        step = AGREEMENT_CHUNK
        await asyncio.gather(
            *(chunk(principals[i : i + step]) for i in range(0, len(principals), step))
        )
        return [outcome[p] for p in principals]

    async def regenerate(self, actor: str) -> RegenerateReport:
        """Re-render every principal; one failure does not stop the others."""
        census = await self._census()
        report = RegenerateReport(errors=self._missing_errors(census.missing))
        results = await self._repair_all(census.present)
        for (kind, name), exc in zip(census.present, results, strict=True):
            if exc is not None:
                report.errors.append(PrincipalError(kind, name, _describe(exc)))
            elif kind == USER:
                report.users_updated += 1
            else:
                report.groups_updated += 1
        everyone = [*census.present, *census.missing]
        report.users_total = sum(1 for kind, _ in everyone if kind == USER)
        report.groups_total = len(everyone) - report.users_total
        async with transaction(self._engine) as conn:
            await audit.record(
                conn,
                actor=actor,
                action=REGENERATE_ACTION,
                target="*",
                details={
                    "users_updated": report.users_updated,
                    "groups_updated": report.groups_updated,
                    "failed_count": len(report.errors),
                    "failed": [
                        f"{e.resource_type}:{e.resource_name}"
                        for e in report.errors[:AUDIT_LIST_LIMIT]
                    ],
                },
            )
        return report

    async def _drift_of(self, principal: Principal) -> list[str]:
        kind, name = principal
        if kind == USER:
            expected, holder = await asyncio.gather(
                self._policies.render_user(name), self._store.get_user(name)
            )
        else:
            expected, holder = await asyncio.gather(
                self._policies.render_group(name), self._store.get_group(name)
            )
        if holder is None:
            raise _Absent()
        stored = await asyncio.gather(*(self._store.get_policy(n) for n in expected))
        problems: list[str] = []
        for (policy, document), actual in zip(expected.items(), stored, strict=True):
            if actual is None:
                problems.append(f"policy {policy} is missing")
            elif canonical_document(actual) != canonical_document(document):
                problems.append(f"policy {policy} differs from its records")
        attached = set(holder.policies)
        problems += [f"policy {p} is not attached" for p in sorted(set(expected) - attached)]
        problems += [f"unexpected policy {p} is attached" for p in sorted(attached - set(expected))]
        return problems

    async def _checked(self, principal: Principal) -> list[str] | Exception:
        try:
            return await self._drift_of(principal)
        except Exception as exc:
            return exc

    async def drift(self) -> DriftReport:
        """Compare what is stored with what the records render to; changes nothing."""
        census = await self._census()
        report = DriftReport(errors=self._missing_errors(census.missing))
        results = await self._bounded([partial(self._checked, p) for p in census.present])
        report.principals_checked = len(census.present)
        # Read after the comparison: a row that was pending during it is still reported as
        # pending (or has been applied since, and its difference is then stale anyway).
        async with transaction(self._engine) as conn:
            pending = await outbox.pending_principals(conn)
        for (kind, name), result in zip(census.present, results, strict=True):
            if isinstance(result, Exception):
                report.errors.append(PrincipalError(kind, name, _describe(result)))
            elif (kind, name) in pending:
                report.pending.append(Drift(kind, name, result))
            elif result:
                report.drifted.append(Drift(kind, name, result))
        checked = set(census.present)
        report.pending += [Drift(k, n, []) for k, n in sorted(pending - checked)]
        return report
