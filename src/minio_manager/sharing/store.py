"""Share records: who shared which path with whom, at which level. Policies derive from them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from minio_manager.db.tables import shares
from minio_manager.governance.layout import Grant

USER = "user"
GROUP = "group"


async def grants_for(conn: AsyncConnection, target_type: str, target_name: str) -> list[Grant]:
    """Every grant a principal has received, in a stable order."""
    rows = await conn.execute(
        select(shares.c.bucket, shares.c.key, shares.c.level)
        .where(shares.c.target_type == target_type, shares.c.target_name == target_name)
        .order_by(shares.c.bucket, shares.c.key)
    )
    return [Grant(r.bucket, r.key, write=r.level == "write") for r in rows]


Principal = tuple[str, str]  # (target_type, target_name)


async def delete_involving_user(conn: AsyncConnection, user: str) -> list[Principal]:
    """Drop every share a user gave or received; returns the *other* principals affected.

    The caller re-renders the returned principals' policies after committing.
    """
    given = await conn.execute(
        shares.delete()
        .where(shares.c.owner == user)
        .returning(shares.c.target_type, shares.c.target_name)
    )
    affected = {(r.target_type, r.target_name) for r in given}
    await conn.execute(
        shares.delete().where(shares.c.target_type == USER, shares.c.target_name == user)
    )
    affected.discard((USER, user))
    return sorted(affected)


async def delete_received_by_group(conn: AsyncConnection, group: str) -> int:
    """Drop every share a group received (used when the group is deleted)."""
    result = await conn.execute(
        shares.delete().where(shares.c.target_type == GROUP, shares.c.target_name == group)
    )
    return int(result.rowcount or 0)
