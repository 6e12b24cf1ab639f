"""Cached credentials, encrypted and decrypted by pgcrypto inside PostgreSQL.

The key is a bound parameter (never interpolated) and the engine hides parameters from
error messages, so neither the key nor a secret can reach a log line.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from minio_manager.db.tables import user_credentials


@dataclass(frozen=True)
class StoredCredentials:
    username: str
    access_key: str
    secret_key: str

    def __repr__(self) -> str:
        return f"StoredCredentials(username={self.username!r}, secret_key=<redacted>)"


_SELECT = text(
    "SELECT access_key, pgp_sym_decrypt(secret_key, :key) AS secret "
    "FROM user_credentials WHERE username = :username"
)


async def fetch(conn: AsyncConnection, username: str, key: str) -> StoredCredentials | None:
    """The hot path: one primary-key lookup."""
    row = (await conn.execute(_SELECT, {"key": key, "username": username})).first()
    if row is None:
        return None
    return StoredCredentials(username, row.access_key, row.secret)


async def save(
    conn: AsyncConnection, username: str, access_key: str, secret: str, key: str
) -> None:
    encrypted = func.pgp_sym_encrypt(bindparam("secret", secret), bindparam("key", key))
    stmt = insert(user_credentials).values(
        username=username, access_key=access_key, secret_key=encrypted
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[user_credentials.c.username],
        set_={
            "access_key": stmt.excluded.access_key,
            "secret_key": stmt.excluded.secret_key,
            "updated_at": func.now(),
        },
    )
    await conn.execute(stmt)


async def remove(conn: AsyncConnection, username: str) -> None:
    await conn.execute(delete(user_credentials).where(user_credentials.c.username == username))


async def usernames(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(select(user_credentials.c.username).order_by("username"))
    return [r[0] for r in rows]
