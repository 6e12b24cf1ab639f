"""Store groups: the tenants (group pairs ``g`` + ``g``ro) the service knows exist in the store.

Listings take group names from here instead of MinIO's ``list-groups``, which re-reads every
group from the drive under MinIO's IAM write lock (docs/decisions.md, "Group register").
Empty at first: the service fills it from the store once, at its first start after this
revision, and then records every group it creates or deletes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "store_groups",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column(
            "registered_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )


def downgrade() -> None:
    op.drop_table("store_groups")
