"""Paging through the audit log (admins only; the route checks the role)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from minio_manager.audit import store
from minio_manager.db.engine import transaction


@dataclass(frozen=True)
class AuditPage:
    entries: list[dict[str, Any]]
    total_count: int
    page: int
    page_size: int

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total_count / self.page_size)

    @property
    def has_next(self) -> bool:
        return self.page < self.total_pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1


async def page_entries(
    engine: AsyncEngine,
    *,
    page: int,
    page_size: int,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
) -> AuditPage:
    """Newest first; filters match exactly."""
    async with transaction(engine) as conn:
        rows, total = await store.page(
            conn,
            offset=(page - 1) * page_size,
            limit=page_size,
            actor=actor,
            action=action,
            target=target,
        )
    return AuditPage(rows, total, page, page_size)
