"""Tenant metadata and steward rows (PostgreSQL). Membership itself lives in the object store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from minio_manager.db.fast import FastReader
from minio_manager.db.tables import tenant_metadata, tenant_stewards

EDITABLE_FIELDS = ("display_name", "description", "organization", "website")


@dataclass(frozen=True)
class TenantRecord:
    tenant_name: str
    display_name: str | None
    description: str | None
    organization: str | None
    website: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    updated_by: str | None


@dataclass(frozen=True)
class StewardRecord:
    tenant_name: str
    username: str
    assigned_by: str
    assigned_at: datetime


def _tenant(row: Any) -> TenantRecord:
    return TenantRecord(**{name: getattr(row, name) for name in TenantRecord.__dataclass_fields__})


def _steward(row: Any) -> StewardRecord:
    return StewardRecord(row.tenant_name, row.username, row.assigned_by, row.assigned_at)


def _editable(fields: Mapping[str, str | None]) -> dict[str, str | None]:
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    return dict(fields)


async def get(conn: AsyncConnection, tenant: str) -> TenantRecord | None:
    row = (
        await conn.execute(select(tenant_metadata).where(tenant_metadata.c.tenant_name == tenant))
    ).first()
    return None if row is None else _tenant(row)


class ListingRow(NamedTuple):
    """What ``GET /tenants`` shows of one tenant's metadata (all None without a metadata
    row), and whether the caller stewards it."""

    display_name: str | None
    description: str | None
    website: str | None
    organization: str | None
    stewarded: bool


_NAMES = (
    "WITH t AS (SELECT n.name, m.display_name, m.description, m.website, m.organization"
    " FROM (SELECT name FROM store_groups WHERE name <> '*'"  # = register.CANDIDATES
    "  UNION SELECT tenant_name FROM tenant_metadata) AS n (name)"
    " LEFT JOIN tenant_metadata m ON m.tenant_name = n.name)"
)
# What every caller sees of the listing, hashed: %L quotes each field (NULL unquoted), so
# no two different listings hash the same text.
_FINGERPRINT = (
    "(SELECT md5(string_agg(format('%L,%L,%L,%L,%L', t.name, t.display_name, t.description,"
    " t.website, t.organization), ';' ORDER BY t.name COLLATE \"C\")) FROM t)"
)
_LISTING = " ".join(
    (
        _NAMES,
        "SELECT t.name, t.display_name, t.description, t.website, t.organization,"
        " EXISTS (SELECT 1 FROM tenant_stewards s"
        "  WHERE s.tenant_name = t.name AND s.username = $1) AS stewarded,",
        _FINGERPRINT,
        "AS fingerprint FROM t",
    )
)
_LISTING_STATE = " ".join(
    (
        _NAMES,
        "SELECT",
        _FINGERPRINT,
        "AS fingerprint,"
        " ARRAY(SELECT tenant_name FROM tenant_stewards WHERE username = $1) AS stewarded",
    )
)


class Listing(NamedTuple):
    rows: dict[str, ListingRow]
    fingerprint: str | None
    """A hash of the rows as every caller sees them (None without rows)."""


class ListingState(NamedTuple):
    fingerprint: str | None
    stewarded: frozenset[str]


async def listing(reader: FastReader, user: str) -> Listing:
    """Every tenant the service knows of (the group register and metadata rows, not the
    store: see ``register``) with its metadata and the caller's stewardship, in one prepared
    statement on the hot pool. Through SQLAlchemy, building records of these rows was a third
    of a warm ``GET /tenants`` with 51 tenants, and grows with the tenant count."""
    rows = await reader.fetch(_LISTING, user)
    fingerprint = rows[0][6] if rows else None
    return Listing({r[0]: ListingRow(r[1], r[2], r[3], r[4], r[5]) for r in rows}, fingerprint)


async def listing_state(reader: FastReader, user: str) -> ListingState:
    """The listing's fingerprint and the caller's stewardships: one row, whatever the tenant
    count. When the fingerprint is the one a kept listing was built from, that listing is
    still what the rows say (same statement snapshot as ``listing``'s hash)."""
    row = await reader.fetchrow(_LISTING_STATE, user)
    assert row is not None  # an aggregate without GROUP BY always answers one row
    return ListingState(row[0], frozenset(row[1] or ()))


async def create(
    conn: AsyncConnection, tenant: str, created_by: str, fields: Mapping[str, str | None]
) -> tuple[TenantRecord, bool]:
    """Insert the row unless it exists; returns (row, created). An existing row is untouched."""
    stmt = (
        insert(tenant_metadata)
        .values(tenant_name=tenant, created_by=created_by, **_editable(fields))
        .on_conflict_do_nothing(index_elements=[tenant_metadata.c.tenant_name])
        .returning(tenant_metadata)
    )
    row = (await conn.execute(stmt)).first()
    if row is not None:
        return _tenant(row), True
    existing = await get(conn, tenant)
    if existing is None:  # deleted between the two statements: vanishingly rare
        raise RuntimeError(f"tenant metadata for {tenant!r} vanished during creation")
    return existing, False


async def update_fields(
    conn: AsyncConnection, tenant: str, updated_by: str, fields: Mapping[str, str | None]
) -> TenantRecord | None:
    stmt = (
        update(tenant_metadata)
        .where(tenant_metadata.c.tenant_name == tenant)
        .values(updated_by=updated_by, updated_at=func.now(), **_editable(fields))
        .returning(tenant_metadata)
    )
    row = (await conn.execute(stmt)).first()
    return None if row is None else _tenant(row)


async def delete_metadata(conn: AsyncConnection, tenant: str) -> bool:
    """Delete the row (steward rows cascade); False if there was none."""
    result = await conn.execute(
        delete(tenant_metadata).where(tenant_metadata.c.tenant_name == tenant)
    )
    return bool(result.rowcount)


# -- stewards ---------------------------------------------------------------------------------
async def stewards(conn: AsyncConnection, tenant: str) -> list[StewardRecord]:
    rows = await conn.execute(
        select(tenant_stewards)
        .where(tenant_stewards.c.tenant_name == tenant)
        .order_by(tenant_stewards.c.username)
    )
    return [_steward(r) for r in rows]


async def is_steward(conn: AsyncConnection, tenant: str, user: str) -> bool:
    row = (
        await conn.execute(
            select(tenant_stewards.c.username).where(
                tenant_stewards.c.tenant_name == tenant, tenant_stewards.c.username == user
            )
        )
    ).first()
    return row is not None


async def add_steward(
    conn: AsyncConnection, tenant: str, user: str, assigned_by: str
) -> tuple[StewardRecord, bool]:
    """Insert the steward row unless it exists; returns (row, created)."""
    stmt = (
        insert(tenant_stewards)
        .values(tenant_name=tenant, username=user, assigned_by=assigned_by)
        .on_conflict_do_nothing(
            index_elements=[tenant_stewards.c.tenant_name, tenant_stewards.c.username]
        )
        .returning(tenant_stewards)
    )
    row = (await conn.execute(stmt)).first()
    if row is not None:
        return _steward(row), True
    existing = (
        await conn.execute(
            select(tenant_stewards).where(
                tenant_stewards.c.tenant_name == tenant, tenant_stewards.c.username == user
            )
        )
    ).first()
    if existing is None:
        raise RuntimeError(f"steward row {tenant!r}/{user!r} vanished during creation")
    return _steward(existing), False


async def remove_steward(conn: AsyncConnection, tenant: str, user: str) -> bool:
    result = await conn.execute(
        delete(tenant_stewards).where(
            tenant_stewards.c.tenant_name == tenant, tenant_stewards.c.username == user
        )
    )
    return bool(result.rowcount)


async def remove_steward_everywhere(conn: AsyncConnection, user: str) -> list[str]:
    """Drop every steward row of a user (user deletion); returns the tenants concerned."""
    rows = await conn.execute(
        delete(tenant_stewards)
        .where(tenant_stewards.c.username == user)
        .returning(tenant_stewards.c.tenant_name)
    )
    return sorted(r.tenant_name for r in rows)
