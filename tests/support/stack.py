"""Reach the real stack started by ``scripts/stack.sh`` (PostgreSQL, Redis, MinIO)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import asyncpg

REPO = Path(__file__).resolve().parents[2]
STACK_VARS = (
    "MINIO_ENDPOINT",
    "MINIO_ROOT_USER",
    "MINIO_ROOT_PASSWORD",
    "REDIS_URL",
    "MMS_DB_HOST",
    "MMS_DB_PORT",
    "MMS_DB_NAME",
    "MMS_DB_USER",
    "MMS_DB_PASSWORD",
    "MMS_DB_ENCRYPTION_KEY",
)


def stack_env() -> dict[str, str]:
    """The stack's variables: from the environment, else from ``scripts/stack.sh env``."""
    if all(os.environ.get(v) for v in STACK_VARS):
        return {v: os.environ[v] for v in STACK_VARS}
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "stack.sh"), "env"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    env: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            env[name] = shlex.split(value)[0] if value else ""
    missing = [v for v in STACK_VARS if not env.get(v)]
    if missing:
        raise RuntimeError(f"stack is not up (run scripts/stack.sh up): missing {missing}")
    return env


async def connect(env: dict[str, str], database: str | None = None) -> asyncpg.Connection:
    """A plain asyncpg connection as the service's role (default: the stack's database)."""
    return await asyncpg.connect(
        host=env["MMS_DB_HOST"],
        port=int(env["MMS_DB_PORT"]),
        user=env["MMS_DB_USER"],
        password=env["MMS_DB_PASSWORD"],
        database=database or env["MMS_DB_NAME"],
    )


async def recreate_database(env: dict[str, str], name: str) -> None:
    """Drop (disconnecting anyone) and create database ``name``, owned by the service's role."""
    await drop_database(env, name)
    conn = await connect(env)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(env: dict[str, str], name: str) -> None:
    conn = await connect(env)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
