"""Share records: who shared which path with whom, at which level. Policies derive from them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from minio_manager.db.tables import shares
from minio_manager.governance.layout import Grant, Layout
from minio_manager.governance.paths import SharePath, self_and_ancestors
from minio_manager.governance.share_bounds import effective_share_grants

log = logging.getLogger(__name__)

USER = "user"
GROUP = "group"
READ = "read"
WRITE = "write"

Principal = tuple[str, str]  # (target_type, target_name)


@dataclass(frozen=True)
class ShareRecord:
    bucket: str
    key: str
    target_type: str
    target_name: str
    level: str

    @property
    def principal(self) -> Principal:
        return (self.target_type, self.target_name)


def _record(row: Any) -> ShareRecord:
    return ShareRecord(row.bucket, row.key, row.target_type, row.target_name, row.level)


def _on_path(path: SharePath) -> ColumnElement[bool]:
    return and_(shares.c.bucket == path.bucket, shares.c.key == path.key)


async def grant(
    conn: AsyncConnection,
    *,
    owner: str,
    path: SharePath,
    targets: Sequence[Principal],
    level: str,
    actor: str,
) -> dict[Principal, str | None]:
    """Create or re-level one record per target; returns each target's previous level.

    An upsert, so two replicas granting the same path to the same target at once both
    succeed (the unique key is path + target) instead of one failing on a duplicate.
    """
    if not targets:
        return {}
    existing = await conn.execute(
        select(shares.c.target_type, shares.c.target_name, shares.c.level).where(
            _on_path(path),
            tuple_(shares.c.target_type, shares.c.target_name).in_(list(targets)),
        )
    )
    previous: dict[Principal, str | None] = dict.fromkeys(targets)
    previous.update({(r.target_type, r.target_name): r.level for r in existing})
    stmt = insert(shares).values(
        [
            {
                "owner": owner,
                "bucket": path.bucket,
                "key": path.key,
                "target_type": target_type,
                "target_name": target_name,
                "level": level,
                "created_by": actor,
            }
            # A fixed row order, so concurrent upserts lock rows in the same order.
            for target_type, target_name in sorted(set(targets))
        ]
    )
    stmt = stmt.on_conflict_do_update(
        constraint="uq_shares_grant",
        set_={"level": stmt.excluded.level, "updated_at": func.now()},
        where=shares.c.level != stmt.excluded.level,
    )
    await conn.execute(stmt)
    return previous


async def revoke(
    conn: AsyncConnection, *, path: SharePath, targets: Sequence[Principal]
) -> list[ShareRecord]:
    """Delete the records of ``path`` held by ``targets``; returns those that existed."""
    if not targets:
        return []
    rows = await conn.execute(
        shares.delete()
        .where(
            _on_path(path),
            tuple_(shares.c.target_type, shares.c.target_name).in_(list(targets)),
        )
        .returning(
            shares.c.bucket,
            shares.c.key,
            shares.c.target_type,
            shares.c.target_name,
            shares.c.level,
        )
    )
    return [_record(r) for r in rows]


async def revoke_under(conn: AsyncConnection, path: SharePath) -> list[ShareRecord]:
    """Delete every record of ``path`` and of any path below it; returns them."""
    rows = await conn.execute(
        shares.delete()
        .where(
            shares.c.bucket == path.bucket,
            or_(
                shares.c.key == path.key,
                shares.c.key.startswith(path.key + "/", autoescape=True),
            ),
        )
        .returning(
            shares.c.bucket,
            shares.c.key,
            shares.c.target_type,
            shares.c.target_name,
            shares.c.level,
        )
    )
    return sorted((_record(r) for r in rows), key=lambda r: (r.key, r.principal))


async def covering(conn: AsyncConnection, path: SharePath) -> list[ShareRecord]:
    """Records that grant access to all of ``path``: on it or on one of its ancestors."""
    rows = await conn.execute(
        select(
            shares.c.bucket,
            shares.c.key,
            shares.c.target_type,
            shares.c.target_name,
            shares.c.level,
        )
        .where(shares.c.bucket == path.bucket, shares.c.key.in_(self_and_ancestors(path.key)))
        .order_by(shares.c.target_type, shares.c.target_name, shares.c.key)
    )
    return [_record(r) for r in rows]


async def principals(conn: AsyncConnection) -> list[Principal]:
    """Every principal that holds at least one record."""
    rows = await conn.execute(
        select(shares.c.target_type, shares.c.target_name)
        .distinct()
        .order_by(shares.c.target_type, shares.c.target_name)
    )
    return [(r.target_type, r.target_name) for r in rows]


async def grants_for(
    conn: AsyncConnection, target_type: str, target_name: str, layout: Layout
) -> list[Grant]:
    """Every grant a principal has received, in a stable order, as it may be rendered.

    Each record is bounded by its owner's own rights (``governance/share_bounds.py``): a write
    share never lets the target write where the owner cannot.
    """
    rows = await conn.execute(
        select(shares.c.bucket, shares.c.key, shares.c.level, shares.c.owner)
        .where(shares.c.target_type == target_type, shares.c.target_name == target_name)
        .order_by(shares.c.bucket, shares.c.key)
    )
    return _granted(target_type, target_name, list(rows), layout)


async def grants_for_many(
    conn: AsyncConnection, principals: Sequence[Principal], layout: Layout
) -> dict[Principal, list[Grant]]:
    """``grants_for`` of each principal, in one query (principals without records get [])."""
    found: dict[Principal, list[Any]] = {p: [] for p in principals}
    if not principals:
        return {}
    rows = await conn.execute(
        select(
            shares.c.target_type,
            shares.c.target_name,
            shares.c.bucket,
            shares.c.key,
            shares.c.level,
            shares.c.owner,
        )
        .where(tuple_(shares.c.target_type, shares.c.target_name).in_(list(found)))
        .order_by(shares.c.target_type, shares.c.target_name, shares.c.bucket, shares.c.key)
    )
    for row in rows:
        found[(row.target_type, row.target_name)].append(row)
    return {p: _granted(p[0], p[1], found[p], layout) for p in principals}


def _granted(target_type: str, target_name: str, rows: list[Any], layout: Layout) -> list[Grant]:
    templates: dict[str, list[Grant]] = {}  # most rows of one principal share a few owners

    def template_of(owner: str) -> list[Grant]:
        if owner not in templates:
            templates[owner] = layout.user_home_grants(owner)
        return templates[owner]

    granted, refused = effective_share_grants(
        (Grant(r.bucket, r.key, write=r.level == WRITE), template_of(r.owner)) for r in rows
    )
    for grant in refused:
        log.warning(
            "share record of %s %s on %s/%s not rendered: its key holds policy syntax",
            target_type,
            target_name,
            grant.bucket,
            grant.key[:80],
        )
    return granted


async def delete_involving_user(conn: AsyncConnection, user: str) -> list[Principal]:
    """Drop every share a user gave or received; returns the *other* principals affected.

    The caller re-renders the returned principals' policies after committing.
    """
    given = await conn.execute(
        shares.delete()
        .where(shares.c.owner == user)
        .returning(shares.c.target_type, shares.c.target_name)
    )
    affected = {(r.target_type, r.target_name) for r in given}
    await conn.execute(
        shares.delete().where(shares.c.target_type == USER, shares.c.target_name == user)
    )
    affected.discard((USER, user))
    return sorted(affected)


async def delete_received_by_group(conn: AsyncConnection, group: str) -> int:
    """Drop every share a group received (used when the group is deleted)."""
    result = await conn.execute(
        shares.delete().where(shares.c.target_type == GROUP, shares.c.target_name == group)
    )
    return int(result.rowcount or 0)


async def delete_received(conn: AsyncConnection, targets: Sequence[Principal]) -> int:
    """Drop every share the given principals received; returns how many rows went.

    Used before a principal is *created*: rows left for a name that did not exist (a share
    committed while its previous holder was being deleted) must not become grants of whoever
    gets the name next.
    """
    if not targets:
        return 0
    result = await conn.execute(
        shares.delete().where(tuple_(shares.c.target_type, shares.c.target_name).in_(list(targets)))
    )
    return int(result.rowcount or 0)
