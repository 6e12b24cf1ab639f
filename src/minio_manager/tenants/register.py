"""The register of store groups: which tenants (``g`` + ``g``ro) exist, kept in PostgreSQL.

Listings (``GET /tenants``, ``GET /management/groups[/names]``) need every group's name.
MinIO's ``list-groups`` re-reads every group from the drive while holding the IAM write lock
(1.7 s at 1 200 groups, every S3 authentication waiting meanwhile), so no request path may
call it. Names come from here instead; whether each group exists, and who is in it, is still
asked of the store (``group-info``, through the membership cache), so what a listing shows
is what the store enforces.

- Creating a tenant registers its name *before* the store creates the groups; deleting one
  forgets it *after* the store deleted them. A crash in between leaves a name whose groups
  are missing, which listings skip — never a service-made group missing from the register.
- Candidates = register ∪ metadata rows (a tenant with metadata is a tenant to look for).
- Filled from the store once (``fill_once``): at the first start after migration 0006,
  one ``list-groups``, then the row ``*`` marks it done. Groups made by hand afterwards
  (``mc admin group add``) are listed once ``POST /management/groups/{g}`` adopts them.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from minio_manager.db.engine import transaction
from minio_manager.db.tables import store_groups
from minio_manager.errors import ServiceError
from minio_manager.governance.layout import GLOBAL_GROUP
from minio_manager.governance.naming import base_group_of
from minio_manager.objectstore.port import ObjectStore

log = logging.getLogger(__name__)

FILLED = "*"
"""The row that says the register was filled from the store (never a group name)."""

CANDIDATES = (
    "SELECT name FROM store_groups WHERE name <> '*' UNION SELECT tenant_name FROM tenant_metadata"
)
"""Every base name a listing looks up in the store (SQL, for reuse in other statements)."""


async def register(conn: AsyncConnection, tenant: str) -> None:
    """Record a tenant before its groups are created (idempotent)."""
    await conn.execute(insert(store_groups).values(name=tenant).on_conflict_do_nothing())


async def forget(conn: AsyncConnection, tenant: str) -> None:
    """Drop a tenant after its groups were deleted."""
    await conn.execute(delete(store_groups).where(store_groups.c.name == tenant))


async def candidates(conn: AsyncConnection) -> list[str]:
    """Base names to look up, sorted."""
    rows = await conn.exec_driver_sql(CANDIDATES)
    return sorted(r[0] for r in rows)


async def fill_once(engine: AsyncEngine, store: ObjectStore) -> bool:
    """Register every group the store holds, unless that was done before; True if it ran.

    The one ``list-groups`` of the service's life (per database), at start-up, not on a
    request path. Replicas starting together may both run it: inserts are idempotent."""
    async with transaction(engine) as conn:
        done = (
            await conn.execute(select(store_groups.c.name).where(store_groups.c.name == FILLED))
        ).first()
    if done is not None:
        return False
    names = await store.list_groups()
    bases = sorted({base_group_of(n) for n in names} | {GLOBAL_GROUP})
    async with transaction(engine) as conn:
        await conn.execute(
            insert(store_groups)
            .values([{"name": n} for n in [*bases, FILLED]])
            .on_conflict_do_nothing()
        )
    log.info("group register filled from the store: %d tenants", len(bases))
    return True


async def fill_until_done(engine: AsyncEngine, store: ObjectStore, *, retry_seconds: float) -> None:
    """``fill_once``, tried again while the store or the database cannot answer."""
    while True:
        try:
            await fill_once(engine, store)
            return
        except Exception as exc:  # any failure: try again later
            reason = exc.message if isinstance(exc, ServiceError) else type(exc).__name__
            log.warning("group register not filled yet (tried again shortly): %s", reason)
        await asyncio.sleep(retry_seconds)
