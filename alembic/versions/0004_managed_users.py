"""Managed users: the object-store users this service created or was told to adopt.

A login never takes over a store user missing from this table (docs/decisions.md,
"Hardening"). Every user with cached credentials was provisioned by the service, so the
upgrade records each of them (source ``existing``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "managed_users",
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("adopted_by", sa.String(64)),
        sa.Column("adopted_at", TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "source IN ('provisioned', 'adopted', 'existing')", name="ck_managed_users_source"
        ),
    )
    op.execute(
        "INSERT INTO managed_users (username, source) "
        "SELECT username, 'existing' FROM user_credentials ON CONFLICT DO NOTHING"
    )


def downgrade() -> None:
    op.drop_table("managed_users")
