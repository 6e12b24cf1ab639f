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
