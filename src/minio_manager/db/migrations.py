"""Alembic upgrade at start-up (serialised across replicas by an advisory lock in env.py).

Alembic is imported only when the database is not at ``HEAD`` already: it stays loaded for
the life of the process (~9 MiB of RSS, docs/decisions.md "Memory: the service's baseline"),
and on every start but the first after an upgrade there is nothing for it to do.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text

from minio_manager.config import Settings
from minio_manager.db.engine import create_engine
from minio_manager.db.reference import VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
HEAD = "0006"
"""The newest revision in ``alembic/versions`` (a unit test keeps the two equal)."""


def alembic_config(settings: Settings | None = None) -> Config:
    from alembic.config import Config

    ini = Path(os.environ.get("MMS_ALEMBIC_INI", REPO_ROOT / "alembic.ini"))
    config = Config(str(ini))
    config.set_main_option("script_location", str(ini.parent / "alembic"))
    config.attributes["configure_logging"] = False
    config.attributes["settings"] = settings
    return config


async def database_revisions(settings: Settings) -> list[str]:
    """The revisions recorded in the database's version table; [] when it has none."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            table = f"public.{VERSION_TABLE}"
            if (await conn.execute(text("SELECT to_regclass(:t)"), {"t": table})).scalar() is None:
                return []
            rows = await conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))  # noqa: S608
            return [r[0] for r in rows]
    finally:
        await engine.dispose()


async def upgrade_to_head(settings: Settings) -> None:
    if await database_revisions(settings) == [HEAD]:
        log.info("database schema at revision %s: no migration to run", HEAD)
        return
    from alembic import command

    await asyncio.to_thread(command.upgrade, alembic_config(settings), "head")
