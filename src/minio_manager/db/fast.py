"""Hot reads on a plain asyncpg pool: one prepared statement, no SQLAlchemy, no reset.

Through SQLAlchemy a small read also paid for a pool checkout in a greenlet, execution
options, statement compilation lookups, result wrapping (≈10 µs a row) and a reset on
return: more CPU than the query. ``FastReader`` sends SQL straight through asyncpg, whose
pool keeps each statement prepared per connection. Only autocommit ``SELECT``s run here
(``GET /credentials/``'s pair, ``GET /tenants``' metadata); writes stay on the engine.

Errors: a pool that stays full is ``ServiceBusy`` (429); a database that cannot be reached
is ``DatabaseUnavailable`` (503); a pooled connection that died since its last use (server
restart) is replaced and the read tried once more.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from minio_manager.config import Settings
from minio_manager.errors import DatabaseUnavailable, ServiceBusy

log = logging.getLogger(__name__)

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

    Connections of this pool only ever run autocommit SELECTs: no transaction, no advisory
    lock, no LISTEN, no SET — nothing a reset would have to undo. asyncpg still does its local
    cleanup, and a connection whose query was cancelled is waited for or dropped.
    """


class FastReader:
    """Rows of one SELECT; the pool opens lazily (connections on demand)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
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

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        for attempt in (1, 2):
            try:
                pool = await self._get_pool()
                rows: list[asyncpg.Record] = await pool.fetch(
                    sql, *args, timeout=self._settings.pool_wait_seconds
                )
                return rows
            except TimeoutError:
                log.warning("hot read: no database connection came free within the pool wait")
                raise ServiceBusy(
                    "too many database operations in progress; try again shortly"
                ) from None
            except _GONE:
                if self._pool is not None:
                    # Connections opened before the loss may be as broken as this one.
                    await self._pool.expire_connections()
                if attempt == 1:
                    continue
                log.warning("database unavailable (hot read): connection lost")
                raise DatabaseUnavailable("the database is unavailable") from None
            except _UNREACHABLE as exc:
                log.warning("database unavailable (hot read): %s", type(exc).__name__)
                raise DatabaseUnavailable("the database is unavailable") from None
        raise DatabaseUnavailable("the database is unavailable")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
