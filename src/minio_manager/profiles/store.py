"""E-mails and display names captured from KBase ``/me`` on each auth-cache miss."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from minio_manager.db.tables import user_profiles


async def upsert(
    conn: AsyncConnection, username: str, display_name: str | None, email: str | None
) -> None:
    stmt = insert(user_profiles).values(username=username, display_name=display_name, email=email)
    stmt = stmt.on_conflict_do_update(
        index_elements=[user_profiles.c.username],
        set_={"display_name": display_name, "email": email, "captured_at": func.now()},
    )
    await conn.execute(stmt)


async def emails(conn: AsyncConnection, usernames: Sequence[str]) -> dict[str, str | None]:
    if not usernames:
        return {}
    rows = await conn.execute(
        select(user_profiles.c.username, user_profiles.c.email).where(
            user_profiles.c.username.in_(list(usernames))
        )
    )
    return {r.username: r.email for r in rows}


async def remove(conn: AsyncConnection, username: str) -> None:
    await conn.execute(delete(user_profiles).where(user_profiles.c.username == username))
