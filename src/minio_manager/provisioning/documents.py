"""What each policy document was last written with: the placement the next render keeps.

Rows are read and saved inside the principal's converge transaction (under its advisory
lock). Before a document is overwritten its row is marked ``dirty`` in a transaction of its
own, committed first: if the converge transaction then fails (connection lost after the store
write), the row still says "unknown", so the next render writes that document again instead
of trusting the old grants — a revoked grant can never linger in a document skipped as
unchanged. See docs/decisions.md, "Policy documents".
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from minio_manager.db.engine import transaction
from minio_manager.db.tables import policy_documents as table
from minio_manager.governance.placement import Previous, Where
from minio_manager.governance.policies import policy_name_at


@dataclass
class Written:
    """One family's documents as last written: position → document, and those not trusted."""

    documents: dict[int, Previous] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)


def _levels(value: object) -> dict[Where, bool]:
    if not isinstance(value, list):
        return {}
    return {(str(b), str(k)): bool(w) for b, k, w in value}


async def load(conn: AsyncConnection, families: Iterable[str]) -> dict[str, Written]:
    """The last written documents of each family (families never written are absent)."""
    rows = await conn.execute(
        select(table.c.family, table.c.position, table.c.grants, table.c.size, table.c.dirty).where(
            table.c.family.in_(list(families))
        )
    )
    found: dict[str, Written] = {}
    for row in rows:
        written = found.setdefault(row.family, Written())
        written.documents[row.position] = Previous(_levels(row.grants), row.size)
        if row.dirty:
            written.dirty.add(row.position)
    return found


async def mark_dirty(engine: AsyncEngine, family: str, positions: Collection[int]) -> None:
    """Mark documents about to be overwritten, committed before the write (see module doc)."""
    if not positions:
        return
    async with transaction(engine) as conn:
        await conn.execute(
            update(table)
            .where(table.c.family == family, table.c.position.in_(sorted(positions)))
            .values(dirty=True)
        )


async def save(
    conn: AsyncConnection,
    family: str,
    documents: Mapping[int, Mapping[Where, bool]],
    sizes: Mapping[int, int],
    removed: Collection[int],
) -> None:
    """Record the documents just written (clean, with their sizes); forget removed positions."""
    if documents:
        stmt = insert(table).values(
            [
                {
                    "family": family,
                    "position": position,
                    "grants": sorted([b, k, w] for (b, k), w in levels.items()),
                    "size": sizes[position],
                    "dirty": False,
                }
                for position, levels in sorted(documents.items())
            ]
        )
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[table.c.family, table.c.position],
                set_={
                    "grants": stmt.excluded.grants,
                    "size": stmt.excluded.size,
                    "dirty": False,
                    "updated_at": func.now(),
                },
            )
        )
    if removed:
        await conn.execute(
            delete(table).where(
                and_(table.c.family == family, table.c.position.in_(sorted(removed)))
            )
        )


async def forget(engine: AsyncEngine, families: Iterable[str]) -> list[str]:
    """Drop the rows of deleted principals; returns the policy names they recorded."""
    async with transaction(engine) as conn:
        rows = await conn.execute(
            delete(table)
            .where(table.c.family.in_(list(families)))
            .returning(table.c.family, table.c.position)
        )
        return [policy_name_at(r.family, r.position) for r in rows]
