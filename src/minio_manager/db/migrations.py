"""Alembic upgrade at start-up (serialised across replicas by an advisory lock in env.py)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from alembic import command
from alembic.config import Config

from minio_manager.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[3]


def alembic_config(settings: Settings | None = None) -> Config:
    ini = Path(os.environ.get("MMS_ALEMBIC_INI", REPO_ROOT / "alembic.ini"))
    config = Config(str(ini))
    config.set_main_option("script_location", str(ini.parent / "alembic"))
    config.attributes["configure_logging"] = False
    config.attributes["settings"] = settings
    return config


async def upgrade_to_head(settings: Settings) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(settings), "head")
