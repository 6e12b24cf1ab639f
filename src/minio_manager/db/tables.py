"""PostgreSQL schema (SQLAlchemy Core). Migrations in ``alembic/`` create exactly this."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

NOW = func.now()

user_credentials = Table(
    "user_credentials",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("access_key", String(64), nullable=False),
    Column("secret_key", LargeBinary, nullable=False),  # pgp_sym_encrypt(secret, key)
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    # Fencing of rotations: every change bumps ``version`` (compare-and-set); ``pending``
    # means a store change of this secret is in flight or unverified (treat as a cache miss).
    Column("version", BigInteger, nullable=False, server_default="1"),
    Column("pending", Boolean, nullable=False, server_default=false()),
)

user_profiles = Table(
    "user_profiles",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("display_name", Text),
    Column("email", Text),
    Column("captured_at", DateTime(timezone=True), nullable=False, server_default=NOW),
)

tenant_metadata = Table(
    "tenant_metadata",
    metadata,
    Column("tenant_name", String(64), primary_key=True),
    Column("display_name", Text),
    Column("description", Text),
    Column("organization", Text),
    Column("website", String(2048)),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("updated_by", String(64)),
)

tenant_stewards = Table(
    "tenant_stewards",
    metadata,
    Column(
        "tenant_name",
        String(64),
        ForeignKey("tenant_metadata.tenant_name", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("username", String(64), nullable=False),
    Column("assigned_by", String(64), nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    PrimaryKeyConstraint("tenant_name", "username"),
    Index("ix_tenant_stewards_username", "username"),
)

# Base names of the group pairs (``g``, ``g``ro) the service created or found in the store,
# plus the row ``*`` once the register was filled from the store (tenants/register.py).
store_groups = Table(
    "store_groups",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("registered_at", DateTime(timezone=True), nullable=False, server_default=NOW),
)

shares = Table(
    "shares",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("owner", String(64), nullable=False),
    Column("bucket", String(63), nullable=False),
    Column("key", String(1024), nullable=False),
    Column("target_type", String(8), nullable=False),
    Column("target_name", String(64), nullable=False),
    Column("level", String(8), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    UniqueConstraint("bucket", "key", "target_type", "target_name", name="uq_shares_grant"),
    CheckConstraint("target_type IN ('user', 'group')", name="ck_shares_target_type"),
    CheckConstraint("level IN ('read', 'write')", name="ck_shares_level"),
    Index("ix_shares_target", "target_type", "target_name"),
    Index("ix_shares_owner", "owner"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", Text, nullable=False),
    Column("details", JSONB, nullable=False, server_default="{}"),
    Column("request_id", String(64)),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_actor", "actor"),
    Index("ix_audit_log_action", "action"),
    Index("ix_audit_log_target", "target"),
)

policy_outbox = Table(
    "policy_outbox",
    metadata,
    Column("kind", String(8), nullable=False),  # user | group (policies) | member (intent)
    Column("name", String(140), nullable=False),  # principal, or "{group}/{user}" for member
    Column("desired", String(3)),  # member rows: in | out
    Column("generation", BigInteger, nullable=False, server_default="1"),
    Column("applied_generation", BigInteger, nullable=False, server_default="0"),
    Column("pending_since", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("last_error", Text),
    PrimaryKeyConstraint("kind", "name"),
    CheckConstraint("kind IN ('user', 'group', 'member')", name="ck_policy_outbox_kind"),
    CheckConstraint(
        "(kind = 'member') = (desired IN ('in', 'out'))", name="ck_policy_outbox_desired"
    ),
    Index(
        "ix_policy_outbox_pending",
        "next_attempt_at",
        postgresql_where=text("generation > applied_generation"),
    ),
)

managed_users = Table(
    "managed_users",
    metadata,
    Column("username", String(64), primary_key=True),
    # provisioned: created by a login or an admin; adopted: POST /management/users/{u}/adopt;
    # existing: had cached credentials when migration 0004 ran.
    Column("source", String(16), nullable=False),
    Column("adopted_by", String(64)),
    Column("adopted_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    CheckConstraint(
        "source IN ('provisioned', 'adopted', 'existing')", name="ck_managed_users_source"
    ),
)

policy_documents = Table(
    "policy_documents",
    metadata,
    # The family's base policy name (user-home-policy-{u}, group-policy-{g}, …); position 1 is
    # the document of that name, n ≥ 2 is "{family}--{n}".
    Column("family", String(160), nullable=False),
    Column("position", Integer, nullable=False),
    Column("grants", JSONB, nullable=False),  # [[bucket, key, write], …] as last written
    Column("size", Integer, nullable=False),  # its compact JSON bytes (packing trusts it)
    # Set (committed on its own) before the document is written, cleared with the new grants
    # in the converge transaction: a write whose transaction then failed is written again.
    Column("dirty", Boolean, nullable=False, server_default=false()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    PrimaryKeyConstraint("family", "position"),
    CheckConstraint("position >= 1", name="ck_policy_documents_position"),
)
