"""Policy outbox (pending enforcement, generations as fencing tokens) and credential fencing.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "policy_outbox",
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.String(140), nullable=False),
        sa.Column("desired", sa.String(3)),
        sa.Column("generation", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("applied_generation", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("pending_since", TS),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("last_error", sa.Text),
        sa.PrimaryKeyConstraint("kind", "name"),
        sa.CheckConstraint("kind IN ('user', 'group', 'member')", name="ck_policy_outbox_kind"),
        sa.CheckConstraint(
            "(kind = 'member') = (desired IN ('in', 'out'))", name="ck_policy_outbox_desired"
        ),
    )
    op.create_index(
        "ix_policy_outbox_pending",
        "policy_outbox",
        ["next_attempt_at"],
        postgresql_where=sa.text("generation > applied_generation"),
    )
    op.add_column(
        "user_credentials",
        sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
    )
    op.add_column(
        "user_credentials",
        sa.Column("pending", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("user_credentials", "pending")
    op.drop_column("user_credentials", "version")
    op.drop_index("ix_policy_outbox_pending", table_name="policy_outbox")
    op.drop_table("policy_outbox")
