"""Cached credentials, encrypted and decrypted by pgcrypto inside PostgreSQL.

The key is a bound parameter (never interpolated) and the engine hides parameters from
error messages, so neither the key nor a secret can reach a log line.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import Executable

from minio_manager.db.tables import user_credentials
from minio_manager.objectstore.port import AccessKey


@dataclass(frozen=True)
class StoredCredentials:
    username: str
    access_key: str
    secret_key: str
    version: int = 0
    pending: bool = False
    """A store change of this secret is in flight or unverified: not to be handed out as is."""

    def __repr__(self) -> str:
        return f"StoredCredentials(username={self.username!r}, secret_key=<redacted>)"

    @property
    def pair(self) -> AccessKey:
        return AccessKey(self.access_key, self.secret_key)


_SELECT = text(
    "SELECT access_key, pgp_sym_decrypt(secret_key, :key) AS secret, version, pending "
    "FROM user_credentials WHERE username = :username"
)


async def fetch(conn: AsyncConnection, username: str, key: str) -> StoredCredentials | None:
    """The hot path: one primary-key lookup."""
    row = (await conn.execute(_SELECT, {"key": key, "username": username})).first()
    if row is None:
        return None
    return StoredCredentials(username, row.access_key, row.secret, row.version, row.pending)


_C = user_credentials.c


def _version(value: object) -> int | None:
    return int(value) if isinstance(value, int) else None


async def save(
    conn: AsyncConnection,
    username: str,
    access_key: str,
    secret: str,
    key: str,
    *,
    expected_version: int | None,
) -> int | None:
    """Compare-and-set: store the pair (not pending) if the row is still at
    ``expected_version`` (None: if there is no row yet). Returns the new version, or None if
    someone else changed the row meanwhile."""
    encrypted = func.pgp_sym_encrypt(bindparam("secret", secret), bindparam("key", key))
    stmt: Executable
    if expected_version is None:
        stmt = (
            insert(user_credentials)
            .values(username=username, access_key=access_key, secret_key=encrypted)
            .on_conflict_do_nothing(index_elements=[_C.username])
            .returning(_C.version)
        )
    else:
        stmt = (
            update(user_credentials)
            .where(_C.username == username, _C.version == expected_version)
            .values(
                access_key=access_key,
                secret_key=encrypted,
                pending=False,
                version=_C.version + 1,
                updated_at=func.now(),
            )
            .returning(_C.version)
        )
    return _version((await conn.execute(stmt)).scalar())


async def mark_pending(
    conn: AsyncConnection, username: str, *, expected_version: int | None = None
) -> int | None:
    """Flag the row as unverified (CAS on ``expected_version`` unless None); new version."""
    stmt = update(user_credentials).where(_C.username == username)
    if expected_version is not None:
        stmt = stmt.where(_C.version == expected_version)
    result = await conn.execute(
        stmt.values(pending=True, version=_C.version + 1).returning(_C.version)
    )
    return _version(result.scalar())


async def clear_pending(conn: AsyncConnection, username: str, expected_version: int) -> int | None:
    """The cached pair was verified at the store: hand it out again (CAS)."""
    result = await conn.execute(
        update(user_credentials)
        .where(_C.username == username, _C.version == expected_version)
        .values(pending=False, version=_C.version + 1)
        .returning(_C.version)
    )
    return _version(result.scalar())


async def remove(conn: AsyncConnection, username: str) -> None:
    await conn.execute(delete(user_credentials).where(user_credentials.c.username == username))


async def usernames(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(select(user_credentials.c.username).order_by("username"))
    return [r[0] for r in rows]
