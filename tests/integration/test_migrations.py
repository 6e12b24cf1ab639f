"""Migrations: safe when several replicas upgrade at once, reversible, scripted."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.support.stack import REPO, connect

DB = f"mms_migrations_{os.getpid()}"


@pytest_asyncio.fixture
async def fresh_db(stack: dict[str, str]) -> AsyncIterator[dict[str, str]]:
    admin = await connect(stack, stack["MMS_DB_NAME"])
    await admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{DB}"')
    try:
        yield {**os.environ, **stack, "MMS_DB_NAME": DB}
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        await admin.close()


async def _alembic(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "alembic", *args,
        cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def _tables(env: dict[str, str]) -> set[str]:
    conn = await connect(env, DB)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def test_concurrent_upgrades_from_several_replicas(fresh_db: dict[str, str]) -> None:
    results = await asyncio.gather(*(_alembic(fresh_db, "upgrade", "head") for _ in range(4)))
    assert [code for code, _ in results] == [0, 0, 0, 0], results
    conn = await connect(fresh_db, DB)
    try:
        versions = await conn.fetch("SELECT version_num FROM alembic_version_mms")
    finally:
        await conn.close()
    assert [r["version_num"] for r in versions] == ["0003"]
    assert {"user_credentials", "user_profiles", "tenant_metadata", "tenant_stewards",
            "shares", "audit_log", "policy_outbox",
            "alembic_version_mms"} <= await _tables(fresh_db)  # fmt: skip


async def test_down_and_up_again(fresh_db: dict[str, str]) -> None:
    assert (await _alembic(fresh_db, "upgrade", "head"))[0] == 0
    assert (await _alembic(fresh_db, "downgrade", "-1"))[0] == 0
    tables = await _tables(fresh_db)
    assert "policy_outbox" not in tables
    assert "shares" in tables
    assert (await _alembic(fresh_db, "downgrade", "base"))[0] == 0
    assert await _tables(fresh_db) <= {"alembic_version_mms"}
    assert (await _alembic(fresh_db, "upgrade", "head"))[0] == 0
    assert "shares" in await _tables(fresh_db)


@pytest.mark.parametrize("command", ["status", "history"])
def test_migrate_script(fresh_db: dict[str, str], command: str) -> None:
    up = subprocess.run(
        ["bash", "scripts/migrate.sh", "up"], cwd=REPO, env=fresh_db, capture_output=True
    )
    assert up.returncode == 0, up.stderr
    result = subprocess.run(
        ["bash", "scripts/migrate.sh", command],
        cwd=REPO, env=fresh_db, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "0003" in result.stdout


def test_down_all_refuses_without_confirmation(fresh_db: dict[str, str]) -> None:
    result = subprocess.run(
        ["bash", "scripts/migrate.sh", "down-all"],
        cwd=REPO, env=fresh_db, capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode != 0
