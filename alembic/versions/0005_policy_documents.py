"""Policy documents: which grants each stored policy document was last written with.

Lets a change write only the documents it changes (docs/decisions.md, "Policy documents").
Empty at first: the first render of each principal places its grants from scratch and
writes all of its documents once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "policy_documents",
        sa.Column("family", sa.String(160), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("grants", JSONB, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("dirty", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("family", "position"),
        sa.CheckConstraint("position >= 1", name="ck_policy_documents_position"),
    )


def downgrade() -> None:
    op.drop_table("policy_documents")
