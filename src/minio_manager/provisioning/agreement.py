"""Regenerate's cheap path: prove that the store already agrees, without a converge.

A repair (``PolicySync`` with ``repair``) of a principal whose store copy already agrees
writes nothing, yet costs a transaction of its own: the advisory lock, the outbox row, the
received grants, the recorded documents, and the generation marked applied — ~7 SQL round
trips per principal, about half of regenerate's CPU when nothing differs (issue 12, item 5).
This check reads the same records for a chunk of principals in three queries, reads each
principal's documents and attachments from the store, and lets a principal skip the
converge only when that converge would provably have changed nothing:

- its outbox row has nothing pending (``applied == generation``, or no row), read before the
  records and again after the store reads, unchanged: every change of records bumps the row in
  the same transaction (``outbox.py``), so the records did not change over the whole check;
- every family's recorded placement is clean and equal to what a repair places now
  (``_Update.recorded``), so a repair would save no record and drop no overflow document;
- the store shows every rendered document, canonically equal, and exactly those attached.

Anything else — a difference, a missing principal, a pending row, a failed read — goes the
usual way (``PolicySync.sync_user``/``sync_group`` with ``repair``): under the lock, with the
fences, reading everything again. Nothing here writes, so no lock or fence is needed; a
writer that holds the lock meanwhile writes the render of the same records (nothing is
pending), or of newer ones, which bumps the row and fails the second read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncEngine

from minio_manager.db.engine import transaction
from minio_manager.governance.placement import as_grants
from minio_manager.governance.policies import canonical_document, render_document
from minio_manager.objectstore.port import ObjectStore, StoreGroup, StoreUser
from minio_manager.provisioning import documents, outbox
from minio_manager.provisioning.documents import Written
from minio_manager.provisioning.policy_sync import PolicySync, _Update
from minio_manager.sharing import store as share_store
from minio_manager.sharing.store import USER, Principal

log = logging.getLogger(__name__)


@dataclass
class _Plan:
    principal: Principal
    updates: list[_Update]

    def names(self) -> list[str]:
        return [name for u in self.updates for name in u.names()]


class AgreementCheck:
    def __init__(self, engine: AsyncEngine, store: ObjectStore, policies: PolicySync) -> None:
        self._engine = engine
        self._store = store
        self._policies = policies

    async def agreeing(
        self, principals: Sequence[Principal], gate: asyncio.Semaphore
    ) -> set[Principal]:
        """The principals of ``principals`` proven to agree (see the module doc); store reads
        run under ``gate``. A failure proves nothing: those principals are simply not in it."""
        try:
            before, plans = await self._plans(principals)
        except Exception as exc:  # the converges that follow report it, per principal
            log.warning("agreement check skipped for %d principals: %s", len(principals), exc)
            return set()
        candidates = [plan for plan in plans if all(u.recorded() for u in plan.updates)]
        checked = await asyncio.gather(*(self._store_agrees(plan, gate) for plan in candidates))
        agreed = [plan.principal for plan, ok in zip(candidates, checked, strict=True) if ok]
        if not agreed:
            return set()
        async with transaction(self._engine) as conn:
            after = await outbox.generations(conn, agreed)
        return {p for p in agreed if after[p] == before[p]}

    async def _plans(
        self, principals: Sequence[Principal]
    ) -> tuple[dict[Principal, tuple[int, int]], list[_Plan]]:
        async with transaction(self._engine) as conn:
            # The rows first: the records read after them are at least as new (READ COMMITTED).
            before = await outbox.generations(conn, principals)
            settled = [p for p in principals if before[p][0] == before[p][1]]
            received = await share_store.grants_for_many(conn, settled, self._policies.layout)
            families = {p: self._policies.families(*p, received[p]) for p in settled}
            written = await documents.load(
                conn, [f.base for chosen in families.values() for f in chosen]
            )
        plans = [
            _Plan(p, [self._policies.repair_plan(f, written.get(f.base, Written())) for f in fams])
            for p, fams in families.items()
        ]
        return before, plans

    async def _store_agrees(self, plan: _Plan, gate: asyncio.Semaphore) -> bool:
        kind, name = plan.principal
        rendered = {
            name_: render_document(as_grants(grants))
            for u in plan.updates
            for name_, grants in zip(u.names(), u.placement.documents.values(), strict=True)
        }
        holder_read = self._store.get_user(name) if kind == USER else self._store.get_group(name)
        async with gate:
            results = await asyncio.gather(
                holder_read,
                *(self._store.get_policy(n) for n in rendered),
                return_exceptions=True,
            )
        if any(isinstance(r, BaseException) for r in results):
            return False  # the converge reads again and reports what fails
        holder = cast(StoreUser | StoreGroup | None, results[0])
        stored = cast(list[dict[str, Any] | None], results[1:])
        if holder is None or set(holder.policies) != set(plan.names()):
            return False
        return all(
            actual is not None and canonical_document(actual) == canonical_document(document)
            for document, actual in zip(rendered.values(), stored, strict=True)
        )
