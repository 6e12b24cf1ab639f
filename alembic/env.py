"""Alembic environment: async engine from the service settings, serialised across replicas.

Several replicas may start at once; each takes the same PostgreSQL advisory lock before
upgrading, so exactly one runs the migrations and the others find them done. A database left
by the reference service (its revisions 001-004 in the same version table) is adopted first,
under that lock (``minio_manager.db.reference``).
"""

from __future__ import annotations

import asyncio
import logging.config

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from minio_manager.config import get_settings
from minio_manager.db.engine import create_engine
from minio_manager.db.reference import adopt_reference_schema
from minio_manager.db.tables import metadata

VERSION_TABLE = "alembic_version_mms"
MIGRATION_LOCK_ID = 0x4D4D535F4D494752  # "MMS_MIGR"

config = context.config
settings = config.attributes.get("settings") or get_settings()
if config.config_file_name and config.attributes.get("configure_logging", True):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            await conn.commit()
            try:
                # A database written by the reference service is first converted to our
                # revision 0001 (db/reference.py), inside the same lock.
                await conn.run_sync(adopt_reference_schema)
                await conn.commit()
                await conn.run_sync(_run)
                await conn.commit()
            finally:
                await conn.execute(
                    text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID}
                )
                await conn.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=settings.database_dsn,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
