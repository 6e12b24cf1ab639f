"""Audit rows, written in the caller's transaction so a change and its record land together."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from minio_manager.db.tables import audit_log
from minio_manager.observability.logging import note_governance_change
from minio_manager.request_context import current_request_id

SECRET_MARKERS = ("secret", "password", "token", "encryption")


def _scrub(details: dict[str, Any]) -> dict[str, Any]:
    """Belt and braces: never let a secret-looking field reach the log."""
    return {
        k: ("<redacted>" if any(m in k.lower() for m in SECRET_MARKERS) else v)
        for k, v in details.items()
    }


async def record(
    conn: AsyncConnection,
    *,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
) -> None:
    scrubbed = _scrub(details or {})
    await conn.execute(
        insert(audit_log).values(
            actor=actor,
            action=action,
            target=target,
            details=scrubbed,
            request_id=current_request_id(),
        )
    )
    note_governance_change(
        conn,
        {"event": "audit", "actor": actor, "action": action, "target": target, "details": scrubbed},
    )


async def page(
    conn: AsyncConnection,
    *,
    offset: int,
    limit: int,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Newest first, filtered; returns (rows, total matching)."""
    conditions = []
    if actor:
        conditions.append(audit_log.c.actor == actor)
    if action:
        conditions.append(audit_log.c.action == action)
    if target:
        conditions.append(audit_log.c.target == target)
    query = select(audit_log).where(*conditions)
    total = (
        await conn.execute(select(func.count()).select_from(audit_log).where(*conditions))
    ).scalar_one()
    rows = await conn.execute(
        query.order_by(audit_log.c.at.desc(), audit_log.c.id.desc()).offset(offset).limit(limit)
    )
    return [dict(r._mapping) for r in rows], int(total)
