"""Recognise a database written by the reference service and adopt it in place.

The reference service (``BERDataLakehouse/minio_manager_service``) keeps its Alembic history
in the same version table we use, ``alembic_version_mms``, under revision ids ``001`` … ``004``
that our history does not contain: Alembic alone would stop with "Can't locate revision".
Before Alembic runs (under the same advisory lock, so several replicas starting at once adopt
exactly once), this module turns the reference tables into exactly what our revision ``0001``
creates and stamps ``0001``; the ordinary upgrade then carries on from there.

Nothing is dropped or rewritten: rows stay as they are (secrets stay encrypted with the same
``MMS_DB_ENCRYPTION_KEY``), reference-only tables such as ``polaris_user_credentials`` (004) are
left alone. The reference uses ``TEXT`` where our schema has ``VARCHAR(n)``; columns are
narrowed so a fresh and an adopted database end in the same schema, and a value that would not
fit stops the adoption with a message naming the column (never a value) instead of being
truncated. See docs/decisions.md, "Taking over a reference deployment".
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

VERSION_TABLE = "alembic_version_mms"
REFERENCE_REVISIONS = frozenset({"001", "002", "003", "004"})
ADOPTED_REVISION = "0001"

# What the reference migrations 001-003 create, all ``IF NOT EXISTS``: a database stamped
# ``001`` or ``002`` is first completed to the ``003`` shape, so one conversion fits all.
_COMPLETE_REFERENCE = (
    "CREATE EXTENSION IF NOT EXISTS pgcrypto",
    """CREATE TABLE IF NOT EXISTS user_profiles (
        username TEXT PRIMARY KEY,
        display_name TEXT,
        email TEXT,
        captured_at TIMESTAMPTZ NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS tenant_metadata (
        tenant_name TEXT PRIMARY KEY,
        display_name TEXT,
        description TEXT,
        organization TEXT,
        created_by TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_by TEXT)""",
    """CREATE TABLE IF NOT EXISTS tenant_stewards (
        tenant_name TEXT NOT NULL REFERENCES tenant_metadata(tenant_name) ON DELETE CASCADE,
        username TEXT NOT NULL,
        assigned_by TEXT NOT NULL,
        assigned_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_name, username))""",
    "CREATE INDEX IF NOT EXISTS idx_tenant_stewards_username ON tenant_stewards (username)",
    "ALTER TABLE tenant_metadata ADD COLUMN IF NOT EXISTS website TEXT",
)

# (table, column, length in our schema): the reference has TEXT for each of them.
NARROWED_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("user_credentials", "username", 64),
    ("user_credentials", "access_key", 64),
    ("user_profiles", "username", 64),
    ("tenant_metadata", "tenant_name", 64),
    ("tenant_metadata", "website", 2048),
    ("tenant_metadata", "created_by", 64),
    ("tenant_metadata", "updated_by", 64),
    ("tenant_stewards", "tenant_name", 64),
    ("tenant_stewards", "username", 64),
    ("tenant_stewards", "assigned_by", 64),
)


class ReferenceAdoptionError(RuntimeError):
    """The database looks like the reference service's but cannot be adopted as it is."""


def reference_revision(conn: Connection) -> str | None:
    """The reference revision the version table holds, or None for any other state."""
    exists = conn.execute(text("SELECT to_regclass(:t)"), {"t": f"public.{VERSION_TABLE}"})
    if exists.scalar() is None:
        return None
    query = text(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608 - a constant name
    versions = {r[0] for r in conn.execute(query)}
    found = versions & REFERENCE_REVISIONS
    if not found:
        return None
    if len(versions) != 1:
        raise ReferenceAdoptionError(
            f"{VERSION_TABLE} holds several revisions {sorted(versions)}; expected one"
        )
    return str(found.pop())


def _too_long(conn: Connection) -> list[str]:
    problems = []
    for table, column, limit in NARROWED_COLUMNS:
        count = conn.execute(
            # Table and column names come from the constant list above.
            text(f"SELECT count(*) FROM {table} WHERE length({column}) > :limit"),  # noqa: S608
            {"limit": limit},
        ).scalar()
        if count:
            problems.append(f"{table}.{column} ({count} values longer than {limit})")
    return problems


def adopt_reference_schema(conn: Connection) -> str | None:
    """Convert a reference database to our revision ``0001``; returns the revision adopted.

    Runs in the caller's transaction (commit it): either every step lands or none does.
    Returns None, changing nothing, when the database is not at a reference revision.
    """
    revision = reference_revision(conn)
    if revision is None:
        return None
    for statement in _COMPLETE_REFERENCE:
        conn.execute(text(statement))
    problems = _too_long(conn)
    if problems:
        raise ReferenceAdoptionError(
            "cannot adopt the reference database: values too long for this service's schema in "
            + ", ".join(problems)
            + "; shorten them and start again (nothing was changed)"
        )
    by_table: dict[str, list[str]] = {}
    for table, column, limit in NARROWED_COLUMNS:
        by_table.setdefault(table, []).append(f"ALTER COLUMN {column} TYPE VARCHAR({limit})")
    for table, alterations in by_table.items():
        conn.execute(text(f"ALTER TABLE {table} " + ", ".join(alterations)))
    rename = "ALTER INDEX IF EXISTS idx_tenant_stewards_username RENAME TO"
    conn.execute(text(f"{rename} ix_tenant_stewards_username"))
    stamp = text(f"UPDATE {VERSION_TABLE} SET version_num = :new")  # noqa: S608 - constant
    conn.execute(stamp, {"new": ADOPTED_REVISION})
    log.warning(
        "adopted a reference-service database at revision %s as revision %s",
        revision,
        ADOPTED_REVISION,
    )
    return revision
