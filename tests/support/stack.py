"""Reach the real stack started by ``scripts/stack.sh`` (PostgreSQL, Redis, MinIO or SeaweedFS)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import asyncpg

REPO = Path(__file__).resolve().parents[2]
STORE_VARS = {
    "OBJECT_STORE_ENDPOINT": "MINIO_ENDPOINT",
    "OBJECT_STORE_ACCESS_KEY": "MINIO_ROOT_USER",
    "OBJECT_STORE_SECRET_KEY": "MINIO_ROOT_PASSWORD",
}
"""The object store's variables: the generic name (``stack.sh env seaweedfs``) or the
reference's MinIO name (``stack.sh env``), as the service itself accepts them."""
STACK_VARS = (
    "REDIS_URL",
    "MMS_DB_HOST",
    "MMS_DB_PORT",
    "MMS_DB_NAME",
    "MMS_DB_USER",
    "MMS_DB_PASSWORD",
    "MMS_DB_ENCRYPTION_KEY",
)


def store_var(env: dict[str, str] | os._Environ[str], generic: str) -> str:
    """``OBJECT_STORE_ENDPOINT`` & co., whichever of the two names ``env`` has."""
    return env.get(generic) or env[STORE_VARS[generic]]


def store_kind(env: dict[str, str] | os._Environ[str] | None = None) -> str:
    """``minio`` or ``aws-iam``: which kind of object store the tests run against."""
    return (env if env is not None else os.environ).get("OBJECT_STORE") or "minio"


def _has_store(env: dict[str, str] | os._Environ[str]) -> bool:
    return all(env.get(g) or env.get(legacy) for g, legacy in STORE_VARS.items())


def _store_part(env: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    names = ["OBJECT_STORE", *STORE_VARS, *STORE_VARS.values()]
    return {n: env[n] for n in names if env.get(n)}


def stack_env() -> dict[str, str]:
    """The stack's variables: from the environment, else from ``scripts/stack.sh env``."""
    if all(os.environ.get(v) for v in STACK_VARS) and _has_store(os.environ):
        return {**{v: os.environ[v] for v in STACK_VARS}, **_store_part(os.environ)}
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
    missing = [v for v in STACK_VARS if not env.get(v)] + ([] if _has_store(env) else ["store"])
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
