"""A deployment of the reference service, rebuilt from the facts in REFERENCE_STATE.md.

The database part creates the tables with the SQL the reference migrations ran (001-004) and
stamps its version table; the policy part writes documents the way the reference's policy
builder did (one action per statement as a string, ARNs appended to the first statement of an
action, shares appended after the template). Tests use it to check that this service takes
such a deployment over without losing a grant.
"""

from __future__ import annotations

from typing import Any

import asyncpg

REFERENCE_DDL = {
    "001": [
        "CREATE EXTENSION IF NOT EXISTS pgcrypto",
        """CREATE TABLE IF NOT EXISTS user_credentials (
            username TEXT PRIMARY KEY,
            access_key TEXT NOT NULL,
            secret_key BYTEA NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW())""",
    ],
    "002": [
        """CREATE TABLE IF NOT EXISTS user_profiles (
            username TEXT PRIMARY KEY,
            display_name TEXT,
            email TEXT,
            captured_at TIMESTAMPTZ NOT NULL DEFAULT NOW())""",
        """CREATE TABLE IF NOT EXISTS tenant_metadata (
            tenant_name TEXT PRIMARY KEY,
            display_name TEXT,
            description TEXT,
            organization TEXT,
            created_by TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
            updated_by TEXT)""",
        """CREATE TABLE IF NOT EXISTS tenant_stewards (
            tenant_name TEXT NOT NULL REFERENCES tenant_metadata(tenant_name) ON DELETE CASCADE,
            username TEXT NOT NULL,
            assigned_by TEXT NOT NULL,
            assigned_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
            PRIMARY KEY (tenant_name, username))""",
        "CREATE INDEX IF NOT EXISTS idx_tenant_stewards_username ON tenant_stewards (username)",
    ],
    "003": ["ALTER TABLE tenant_metadata ADD COLUMN IF NOT EXISTS website TEXT"],
    "004": [
        """CREATE TABLE IF NOT EXISTS polaris_user_credentials (
            username TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            client_secret BYTEA NOT NULL,
            personal_catalog TEXT,
            created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW())""",
    ],
}


async def create_reference_schema(conn: asyncpg.Connection, revision: str = "003") -> None:
    """Run the reference migrations up to ``revision`` and stamp it, as Alembic would."""
    for rev in sorted(REFERENCE_DDL):
        if rev > revision:
            break
        for statement in REFERENCE_DDL[rev]:
            await conn.execute(statement)
    await conn.execute(
        "CREATE TABLE alembic_version_mms (version_num VARCHAR(32) NOT NULL,"
        " CONSTRAINT alembic_version_mms_pkc PRIMARY KEY (version_num))"
    )
    await conn.execute("INSERT INTO alembic_version_mms VALUES ($1)", revision)


async def insert_credentials(
    conn: asyncpg.Connection, username: str, secret: str, key: str
) -> None:
    await conn.execute(
        "INSERT INTO user_credentials (username, access_key, secret_key)"
        " VALUES ($1, $1, pgp_sym_encrypt($2, $3))",
        username,
        secret,
        key,
    )


async def schema_of(conn: asyncpg.Connection, ignore_tables: set[str]) -> dict[str, Any]:
    """Columns, indexes and constraints of the public schema, order-insensitive.

    Column order is left out: a column the reference added later (``website``) sits at the end
    of its table there, and PostgreSQL cannot move columns; order carries no meaning.
    """
    columns = await conn.fetch(
        "SELECT table_name, column_name, data_type, character_maximum_length, is_nullable,"
        " column_default FROM information_schema.columns WHERE table_schema = 'public'"
    )
    indexes = await conn.fetch(
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
    )
    constraints = await conn.fetch(
        "SELECT c.conrelid::regclass::text AS table_name, c.conname, c.contype,"
        " pg_get_constraintdef(c.oid) AS definition FROM pg_constraint c"
        " JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = 'public'"
    )
    return {
        "columns": sorted(tuple(r) for r in columns if r["table_name"] not in ignore_tables),
        "indexes": sorted(tuple(r) for r in indexes if r["tablename"] not in ignore_tables),
        "constraints": sorted(
            tuple(r) for r in constraints if r["table_name"] not in ignore_tables
        ),
    }


# -- policy documents in the reference's shape (REFERENCE_STATE.md §5) -------------------------
ARN = "arn:aws:s3:::"


class ReferencePolicy:
    """A policy document built the way the reference's builder did."""

    def __init__(self) -> None:
        self.statements: list[dict[str, Any]] = []

    def _first(self, action: str, bucket: str | None = None) -> dict[str, Any] | None:
        for st in self.statements:
            if st["Action"] != action:
                continue
            if bucket is None or st["Resource"] == [f"{ARN}{bucket}"]:
                return st
        return None

    def _append(self, action: str, resources: list[str]) -> None:
        st = self._first(action)
        if st is None:
            self.statements.append({"Effect": "Allow", "Action": action, "Resource": resources})
        else:
            st["Resource"] += [r for r in resources if r not in st["Resource"]]

    def grant(self, bucket: str, path: str, level: str) -> ReferencePolicy:
        """§5.2: ``level`` is read, write or admin; ``path`` is bucket-relative, normalised."""
        if self._first("s3:GetBucketLocation", bucket) is None:
            self.statements.append(
                {
                    "Effect": "Allow",
                    "Action": "s3:GetBucketLocation",
                    "Resource": [f"{ARN}{bucket}"],
                }
            )
        listing = self._first("s3:ListBucket", bucket)
        if listing is None:
            listing = {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": [f"{ARN}{bucket}"],
                "Condition": {"StringLike": {"s3:prefix": []}},
            }
            self.statements.append(listing)
        prefixes = listing["Condition"]["StringLike"]["s3:prefix"]
        wanted = [path, f"{path}/*"]
        parent = path.rsplit("/", 1)[0] if path.endswith("*") and "/" in path else None
        if parent:
            wanted += [parent, f"{parent}/*"]
        prefixes += [p for p in wanted if p not in prefixes]
        obj = f"{ARN}{bucket}/{path}"
        reads = [obj, f"{obj}/*"]
        if parent:
            reads += [f"{ARN}{bucket}/{parent}", f"{ARN}{bucket}/{parent}/*"]
        self._append("s3:GetObject", reads)
        if level in ("write", "admin"):
            self._append("s3:PutObject", [obj, f"{obj}/*"])
            self._append("s3:DeleteObject", [f"{obj}/*"])
        return self

    def raw(self, statement: dict[str, Any]) -> ReferencePolicy:
        """A hand-edited statement, appended as is."""
        self.statements.append(statement)
        return self

    @property
    def document(self) -> dict[str, Any]:
        return {"Version": "2012-10-17", "Statement": self.statements}


def user_home(user: str, bucket: str = "cdm-lake") -> ReferencePolicy:
    return (
        ReferencePolicy()
        .grant(bucket, f"users-sql-warehouse/{user}/u_{user}__*", "admin")
        .grant(bucket, f"users-general-warehouse/{user}", "admin")
    )


def user_system(user: str) -> ReferencePolicy:
    return (
        ReferencePolicy()
        .grant("cdm-spark-job-logs", f"spark-job-logs/{user}", "write")
        .grant("cts", "logs", "read")
        .grant("cts", "io", "write")
    )


def group_policy(
    group: str, *, read_only: bool = False, bucket: str = "cdm-lake"
) -> ReferencePolicy:
    level = "read" if read_only else "write"
    return (
        ReferencePolicy()
        .grant(bucket, f"tenant-sql-warehouse/{group}/{group}_*", level)
        .grant(bucket, f"tenant-general-warehouse/{group}", level)
    )
