"""``migrations.HEAD`` (start-up skips Alembic when the database is there) is the newest
revision in ``alembic/versions``."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from minio_manager.db.migrations import HEAD, alembic_config


def test_head_constant_is_the_newest_revision() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [HEAD]
