"""Credentials, profiles, tenant metadata and stewards.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
    op.create_table(
        "user_credentials",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("access_key", sa.String(64), nullable=False),
        sa.Column("secret_key", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "user_profiles",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.Text),
        sa.Column("email", sa.Text),
        sa.Column("captured_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "tenant_metadata",
        sa.Column("tenant_name", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.Text),
        sa.Column("description", sa.Text),
        sa.Column("organization", sa.Text),
        sa.Column("website", sa.String(2048)),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_by", sa.String(64)),
    )
    op.create_table(
        "tenant_stewards",
        sa.Column(
            "tenant_name",
            sa.String(64),
            sa.ForeignKey("tenant_metadata.tenant_name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("assigned_by", sa.String(64), nullable=False),
        sa.Column("assigned_at", TS, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_name", "username"),
    )
    op.create_index("ix_tenant_stewards_username", "tenant_stewards", ["username"])


def downgrade() -> None:
    op.drop_index("ix_tenant_stewards_username", table_name="tenant_stewards")
    op.drop_table("tenant_stewards")
    op.drop_table("tenant_metadata")
    op.drop_table("user_profiles")
    op.drop_table("user_credentials")
