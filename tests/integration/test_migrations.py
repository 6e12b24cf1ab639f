"""Migrations: safe when several replicas upgrade at once, reversible, scripted, and able to
adopt a database written by the reference service."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.support.reference import create_reference_schema, insert_credentials, schema_of
from tests.support.stack import REPO, connect

DB = f"mms_migrations_{os.getpid()}"
HEAD = "0006"


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
    assert [r["version_num"] for r in versions] == [HEAD]
    assert {"user_credentials", "user_profiles", "tenant_metadata", "tenant_stewards",
            "shares", "audit_log", "policy_outbox", "managed_users", "policy_documents",
            "store_groups", "alembic_version_mms"} <= await _tables(fresh_db)  # fmt: skip


async def test_down_and_up_again(fresh_db: dict[str, str]) -> None:
    assert (await _alembic(fresh_db, "upgrade", "head"))[0] == 0
    assert (await _alembic(fresh_db, "downgrade", "-1"))[0] == 0
    tables = await _tables(fresh_db)
    assert "store_groups" not in tables
    assert "policy_documents" in tables
    assert (await _alembic(fresh_db, "downgrade", "-1"))[0] == 0
    tables = await _tables(fresh_db)
    assert "policy_documents" not in tables
    assert "managed_users" in tables
    assert (await _alembic(fresh_db, "downgrade", "-1"))[0] == 0
    tables = await _tables(fresh_db)
    assert "managed_users" not in tables
    assert "policy_outbox" in tables
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
    assert HEAD in result.stdout


def test_down_all_refuses_without_confirmation(fresh_db: dict[str, str]) -> None:
    result = subprocess.run(
        ["bash", "scripts/migrate.sh", "down-all"],
        cwd=REPO, env=fresh_db, capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode != 0


async def test_managed_users_start_with_every_cached_credential(fresh_db: dict[str, str]) -> None:
    """0004 records every user that already had credentials (the service provisioned them),
    so no existing user is refused at the next login."""
    assert (await _alembic(fresh_db, "upgrade", "0002"))[0] == 0
    conn = await connect(fresh_db, DB)
    try:
        await conn.execute(
            "INSERT INTO user_credentials (username, access_key, secret_key)"
            " VALUES ('olduser', 'olduser', '\\x00'::bytea)"
        )
    finally:
        await conn.close()
    assert (await _alembic(fresh_db, "upgrade", "head"))[0] == 0
    conn = await connect(fresh_db, DB)
    try:
        rows = await conn.fetch("SELECT username, source, adopted_by FROM managed_users")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [("olduser", "existing", None)]
    assert (await _alembic(fresh_db, "downgrade", "0002"))[0] == 0
    assert "managed_users" not in await _tables(fresh_db)


# -- taking over a database of the reference service ------------------------------------------
REF_DB = f"mms_migrations_ref_{os.getpid()}"


@pytest_asyncio.fixture
async def reference_db(fresh_db: dict[str, str]) -> AsyncIterator[dict[str, str]]:
    admin = await connect(fresh_db, fresh_db["MMS_DB_NAME"])
    await admin.execute(f'DROP DATABASE IF EXISTS "{REF_DB}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{REF_DB}"')
    try:
        yield {**fresh_db, "MMS_DB_NAME": REF_DB}
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{REF_DB}" WITH (FORCE)')
        await admin.close()


@pytest.mark.parametrize("revision", ["003", "004"])
async def test_reference_database_is_adopted_in_place(
    fresh_db: dict[str, str], reference_db: dict[str, str], revision: str
) -> None:
    key = reference_db["MMS_DB_ENCRYPTION_KEY"]
    ref = await connect(reference_db, REF_DB)
    try:
        await create_reference_schema(ref, revision)
        await insert_credentials(ref, "alice", "8charsAb", key)
        await ref.execute(
            "INSERT INTO user_profiles (username, display_name, email) VALUES ('alice', 'A', 'a@x')"
        )
        await ref.execute(
            "INSERT INTO tenant_metadata (tenant_name, display_name, created_by, website)"
            " VALUES ('kbase', 'KBase', 'backfill', 'https://kbase.us')"
        )
        await ref.execute(
            "INSERT INTO tenant_stewards (tenant_name, username, assigned_by)"
            " VALUES ('kbase', 'alice', 'admin')"
        )
        if revision == "004":
            await ref.execute(
                "INSERT INTO polaris_user_credentials (username, client_id, client_secret)"
                " VALUES ('alice', 'cid', pgp_sym_encrypt('polaris', $1))",
                key,
            )
    finally:
        await ref.close()

    # Several replicas start at once on the reference database, one on a fresh one.
    results = await asyncio.gather(
        *(_alembic(reference_db, "upgrade", "head") for _ in range(3)),
        _alembic(fresh_db, "upgrade", "head"),
    )
    assert [code for code, _ in results] == [0, 0, 0, 0], results

    ref, fresh = await connect(reference_db, REF_DB), await connect(fresh_db, DB)
    try:
        ignore = {"polaris_user_credentials"}
        assert await schema_of(ref, ignore) == await schema_of(fresh, ignore)
        assert await ref.fetchval("SELECT version_num FROM alembic_version_mms") == (
            await fresh.fetchval("SELECT version_num FROM alembic_version_mms")
        )
        secret = await ref.fetchval(
            "SELECT pgp_sym_decrypt(secret_key, $1) FROM user_credentials WHERE username = 'alice'",
            key,
        )
        assert secret == "8charsAb"
        assert await ref.fetchval("SELECT email FROM user_profiles") == "a@x"
        meta = await ref.fetchrow("SELECT * FROM tenant_metadata")
        assert (meta["tenant_name"], meta["created_by"], meta["website"]) == (
            "kbase", "backfill", "https://kbase.us",
        )  # fmt: skip
        assert await ref.fetchval("SELECT username FROM tenant_stewards") == "alice"
        if revision == "004":
            polaris = await ref.fetchval(
                "SELECT pgp_sym_decrypt(client_secret, $1) FROM polaris_user_credentials", key
            )
            assert polaris == "polaris"
    finally:
        await ref.close()
        await fresh.close()


async def test_reference_value_too_long_stops_adoption_untouched(
    reference_db: dict[str, str],
) -> None:
    ref = await connect(reference_db, REF_DB)
    try:
        await create_reference_schema(ref, "003")
        await ref.execute(
            "INSERT INTO tenant_metadata (tenant_name, created_by) VALUES ('kbase', $1)", "x" * 80
        )
    finally:
        await ref.close()
    code, output = await _alembic(reference_db, "upgrade", "head")
    assert code != 0
    assert "tenant_metadata.created_by" in output
    assert "x" * 80 not in output
    ref = await connect(reference_db, REF_DB)
    try:
        assert await ref.fetchval("SELECT version_num FROM alembic_version_mms") == "003"
        kind = await ref.fetchval(
            "SELECT data_type FROM information_schema.columns"
            " WHERE table_name = 'user_credentials' AND column_name = 'username'"
        )
        assert kind == "text"
    finally:
        await ref.close()
