"""The hot path's read of a cached pair: one prepared statement on a plain asyncpg pool.

``GET /credentials/`` for a known user is one primary-key lookup with ``pgp_sym_decrypt``.
Through SQLAlchemy that lookup also paid for a pool checkout in a greenlet, execution
options, statement compilation lookups, result wrapping and a reset on return: more CPU than
the query. This reader sends the identical SQL (same table, same decryption inside
PostgreSQL, key as a bound parameter) straight through asyncpg, whose pool keeps it prepared
per connection. A miss (first login) or a *pending* pair (an interrupted rotation) falls
through to ``CredentialService.get_or_issue``, which decides under the user's lock.

Errors: a pool that stays full is ``ServiceBusy`` (429); a database that cannot be reached
is ``DatabaseUnavailable`` (503); a pooled connection that died since its last use (server
restart) is replaced and the read tried once more.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from minio_manager.config import Settings
from minio_manager.credentials.store import StoredCredentials
from minio_manager.errors import DatabaseUnavailable, ServiceBusy

log = logging.getLogger(__name__)

SELECT = (
    "SELECT access_key, pgp_sym_decrypt(secret_key, $1) AS secret, version, pending "
    "FROM user_credentials WHERE username = $2"
)

_GONE = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    # A pooled connection left mid-protocol by a database killed under it ("cannot switch to
    # state 12; another operation is in progress"): seen in the chaos run as a 500.
    asyncpg.InternalClientError,
)
_UNREACHABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
)


async def _keep_session(_: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release (a round trip per request).

    Connections of this pool only ever run the one autocommit SELECT: no transaction, no
    advisory lock, no LISTEN, no SET — nothing a reset would have to undo. asyncpg still does
    its local cleanup, and a connection whose query was cancelled is waited for or dropped.
    """


class HotCredentialReader:
    """Cached pair of a user, or None; the pool opens lazily (connections on demand)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._key = settings.mms_db_encryption_key.get_secret_value()
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    s = self._settings
                    self._pool = await asyncpg.create_pool(
                        host=s.mms_db_host,
                        port=s.mms_db_port,
                        user=s.mms_db_user,
                        password=s.mms_db_password.get_secret_value(),
                        database=s.mms_db_name,
                        min_size=0,
                        max_size=s.hot_pool_size,
                        timeout=5,
                        command_timeout=30,
                        server_settings={"application_name": "minio-manager-hot"},
                        reset=_keep_session,
                    )
        return self._pool

    async def fetch(self, user: str) -> StoredCredentials | None:
        for attempt in (1, 2):
            try:
                pool = await self._get_pool()
                row = await pool.fetchrow(
                    SELECT, self._key, user, timeout=self._settings.pool_wait_seconds
                )
            except TimeoutError:
                log.warning("hot path: no database connection came free within the pool wait")
                raise ServiceBusy(
                    "too many database operations in progress; try again shortly"
                ) from None
            except _GONE:
                if self._pool is not None:
                    # Connections opened before the loss may be as broken as this one.
                    await self._pool.expire_connections()
                if attempt == 1:
                    continue
                log.warning("database unavailable (hot path): connection lost")
                raise DatabaseUnavailable("the database is unavailable") from None
            except _UNREACHABLE as exc:
                log.warning("database unavailable (hot path): %s", type(exc).__name__)
                raise DatabaseUnavailable("the database is unavailable") from None
            if row is None or row["pending"]:
                return None  # missing or pending: ``get_or_issue`` settles it under the lock
            return StoredCredentials(user, row["access_key"], row["secret"], row["version"], False)
        raise DatabaseUnavailable("the database is unavailable")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
