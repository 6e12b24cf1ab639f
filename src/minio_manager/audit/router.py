"""GET /management/audit: every recorded change, newest first (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from minio_manager.audit.service import page_entries
from minio_manager.auth.deps import AdminDep, ServicesDep

router = APIRouter(prefix="/management", tags=["management"])

MAX_PAGE_SIZE = 500
MAX_PAGE = 1_000_000  # keeps the SQL offset far from 64-bit overflow
NO_NUL = r"^[^\x00]*$"
"""PostgreSQL text cannot hold NUL; declared so the OpenAPI says what is refused (422)."""


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    request_id: str | None


class AuditPageResponse(BaseModel):
    entries: list[AuditEntry]
    total_count: int
    page: int
    page_size: int
    total_pages: int
    has_next: bool
    has_prev: bool


@router.get("/audit", response_model=AuditPageResponse)
async def list_audit(
    _: AdminDep,
    services: ServicesDep,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    actor: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    action: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    target: Annotated[str | None, Query(max_length=2048, pattern=NO_NUL)] = None,
) -> AuditPageResponse:
    """Page through the audit log; ``actor``, ``action`` and ``target`` filter exactly."""
    result = await page_entries(
        services.engine,
        page=page,
        page_size=page_size,
        actor=actor,
        action=action,
        target=target,
    )
    return AuditPageResponse(
        entries=[AuditEntry.model_validate(row) for row in result.entries],
        total_count=result.total_count,
        page=result.page,
        page_size=result.page_size,
        total_pages=result.total_pages,
        has_next=result.has_next,
        has_prev=result.has_prev,
    )
