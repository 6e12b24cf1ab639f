"""Which object-store users this service manages, and the guard that keeps it to them.

A login resets a user's secret and hands it out. Done to a store user the service did not
create (a service account, a user an operator made by hand), that would give its identity, and
everything its policies allow, to whoever logs in under the same name. So a secret is set only
for a user that is absent from the store (it is created now, and recorded) or recorded in
``managed_users``; anyone else is refused with ``UnmanagedUser`` (409 / 20032) until an admin
adopts them. ``UserProvisioner.set_secret`` is the one place a secret is written, and it asks
``claim`` first. Callers hold ``credential_lock:{u}``, so the check and the write cannot
interleave with another login or deletion of the same user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, union
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from minio_manager.db.engine import read, transaction
from minio_manager.db.tables import managed_users, user_credentials
from minio_manager.errors import UnmanagedUser
from minio_manager.objectstore.port import ObjectStore

PROVISIONED = "provisioned"
ADOPTED = "adopted"


@dataclass(frozen=True)
class ManagedRecord:
    username: str
    source: str
    adopted_by: str | None
    adopted_at: datetime


async def record(
    conn: AsyncConnection, user: str, *, source: str, actor: str | None
) -> ManagedRecord | None:
    """Record ``user`` as managed in the caller's transaction; None if it already was."""
    row = (
        await conn.execute(
            insert(managed_users)
            .values(username=user, source=source, adopted_by=actor)
            .on_conflict_do_nothing(index_elements=[managed_users.c.username])
            .returning(*managed_users.c)
        )
    ).first()
    return None if row is None else ManagedRecord(*row)


async def fetch(conn: AsyncConnection, user: str) -> ManagedRecord | None:
    row = (
        await conn.execute(select(*managed_users.c).where(managed_users.c.username == user))
    ).first()
    return None if row is None else ManagedRecord(*row)


async def usernames(conn: AsyncConnection) -> list[str]:
    """Every user the service manages, sorted: recorded in ``managed_users`` or holding cached
    credentials (each such user is recorded too; the union also covers a row written before
    migration 0004). Read instead of the store's ``list-users``, whose answer MinIO seals with
    Argon2id (64 MiB per decryption; docs/decisions.md)."""
    both = union(select(managed_users.c.username), select(user_credentials.c.username))
    rows = await conn.execute(select(both.subquery().c.username).order_by("username"))
    return [r[0] for r in rows]


async def forget(conn: AsyncConnection, user: str) -> None:
    """Drop the record (the store user is gone; a later user of that name starts afresh)."""
    await conn.execute(delete(managed_users).where(managed_users.c.username == user))


def refusal(user: str) -> UnmanagedUser:
    return UnmanagedUser(
        f"The object store already has a user '{user}' that this service did not create (for"
        " example a service account), so its secret will not be reset or handed out. An"
        f" administrator can check who uses it and adopt it with POST /management/users/{user}"
        "/adopt, or rename/remove it in the object store."
    )


class ManagedUsers:
    def __init__(self, engine: AsyncEngine, store: ObjectStore) -> None:
        self._engine = engine
        self._store = store

    async def get(self, user: str) -> ManagedRecord | None:
        return await read(self._engine, lambda conn: fetch(conn, user))

    async def claim(self, user: str, actor: str | None, *, absent: bool = False) -> None:
        """Allow setting ``user``'s secret, or raise ``UnmanagedUser``.

        Managed: allowed (one primary-key read). Absent from the store: recorded now, before
        the store user is created, so a crash between the two never leaves a user of ours
        that the next login would refuse. Present but not managed: refused. ``absent``: the
        caller has just seen the store without this user, under the credential lock it still
        holds, and has recorded it already (``CredentialService._provision``): nothing to do.
        """
        if absent:
            return
        if await self.get(user) is not None:
            return
        if await self._store.get_user(user) is not None:
            raise refusal(user)
        async with transaction(self._engine) as conn:
            await record(conn, user, source=PROVISIONED, actor=actor)
