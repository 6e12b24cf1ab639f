"""The async engine, and the translation of "database down" into a 503.

A connection that cannot be had because every pooled one is in use is ``ServiceBusy`` (429);
only a database that cannot be reached is ``DatabaseUnavailable`` (503).

``hide_parameters=True`` keeps bound values (secrets, the pgcrypto key) out of every
exception message SQLAlchemy builds.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from minio_manager.config import Settings
from minio_manager.errors import DatabaseUnavailable, ServiceBusy

log = logging.getLogger(__name__)
T = TypeVar("T")


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.database_dsn,
        connect_args={
            "password": settings.mms_db_password.get_secret_value(),
            "timeout": 5,
            "command_timeout": 30,
            "server_settings": {"application_name": "minio-manager"},
        },
        pool_size=settings.db_pool_size,
        max_overflow=0,  # overflow connections are opened and closed per burst: costly
        # No pre-ping: it would add a round trip to every request. A connection that went
        # stale (database restart) is retried once by ``read`` and reported as 503 otherwise.
        pool_recycle=1800,
        # A wait for a pooled connection is bounded by the pool wait and reported as busy
        # (429), not as the database being down; the pool is sized to the admission bound.
        pool_timeout=settings.pool_wait_seconds,
        hide_parameters=True,
    )


# SQLSTATE classes meaning "the database cannot serve you right now", not "your query is
# wrong": connection exceptions, insufficient resources (too many connections), operator
# intervention (starting up, shutting down), and a read-only standby after a failover.
UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "53", "57", "25006")


def _sqlstate(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")


def is_data_error(exc: BaseException) -> bool:
    """A value the database refused (class 22, e.g. a NUL byte or an out-of-range number)."""
    return isinstance(exc, DBAPIError) and (
        _sqlstate(exc).startswith("22") or type(exc.orig).__name__ == "DataError"
    )


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or _sqlstate(exc).startswith(UNAVAILABLE_SQLSTATE_PREFIXES)
    ):
        return True
    return isinstance(exc, OSError | TimeoutError | ConnectionError)


def _busy() -> ServiceBusy:
    log.warning("no database connection came free within the pool wait")
    return ServiceBusy("too many database operations in progress; try again shortly")


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One transaction; a lost or unreachable database becomes ``DatabaseUnavailable``."""
    try:
        async with engine.begin() as conn:
            yield conn
    except PoolTimeout:
        raise _busy() from None
    except Exception as exc:
        if _is_unavailable(exc):
            log.warning("database unavailable: %s", type(exc).__name__)
            raise DatabaseUnavailable("the database is unavailable") from None
        raise


async def ping(engine: AsyncEngine) -> None:
    async with transaction(engine) as conn:
        await conn.execute(text("SELECT 1"))


async def read(engine: AsyncEngine, query: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run a read in autocommit mode: one round trip, no BEGIN/COMMIT.

    A pooled connection that died since its last use (e.g. after a database restart) is
    discarded and the read is tried once more on a fresh connection.
    """
    for attempt in (1, 2):
        try:
            async with engine.connect() as conn:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                return await query(auto)
        except DBAPIError as exc:
            if attempt == 1 and exc.connection_invalidated:
                continue
            if _is_unavailable(exc):
                log.warning("database unavailable: %s", type(exc).__name__)
                raise DatabaseUnavailable("the database is unavailable") from None
            raise
        except PoolTimeout:
            raise _busy() from None
        except (OSError, TimeoutError) as exc:
            log.warning("database unavailable: %s", type(exc).__name__)
            raise DatabaseUnavailable("the database is unavailable") from None
    raise DatabaseUnavailable("the database is unavailable")
