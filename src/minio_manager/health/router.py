"""/health: each dependency's state; 503 when one the service needs is down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from minio_manager.auth.deps import ServicesDep
from minio_manager.db.engine import ping as db_ping
from minio_manager.db.engine import transaction
from minio_manager.provisioning import outbox

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 3.0

DependencyState = Literal["ok", "unavailable"]


class HealthDependencies(BaseModel):
    database: DependencyState
    redis: DependencyState
    object_store: DependencyState
    auth: DependencyState


class OutboxSummary(BaseModel):
    pending: int
    oldest_pending_seconds: float | None = None
    failing: int


class HealthResponse(BaseModel):
    """The same body for 200 and 503, so a load balancer and a person read one shape."""

    status: Literal["healthy", "unhealthy", "alive"] = Field(
        description="`alive` (with nothing else but the version) answers `?light=true`"
    )
    dependencies: HealthDependencies | None = None
    outbox: OutboxSummary | Literal["unavailable"] | None = Field(
        default=None,
        description="Pending enforcement (informative: never makes the service unhealthy)",
    )
    version: str


async def _check(probe: Awaitable[Any]) -> DependencyState:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except Exception:
        return "unavailable"
    return "ok"


async def _outbox(services: ServicesDep) -> dict[str, Any] | str:
    """Pending enforcement; informative only (pending work never makes health 503)."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            async with transaction(services.engine) as conn:
                totals = await outbox.summary(conn)
    except Exception:
        return "unavailable"
    return {
        "pending": totals.pending,
        "oldest_pending_seconds": totals.oldest_pending_seconds,
        "failing": totals.failing,
    }


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={
        200: {"description": "Every dependency the service needs answers"},
        503: {
            "model": HealthResponse,
            "description": "PostgreSQL, Redis or the object store is down (status unhealthy)",
        },
    },
)
async def health(
    services: ServicesDep,
    light: Annotated[
        bool,
        Query(description="Only report that the process serves requests (a liveness probe)"),
    ] = False,
) -> JSONResponse:
    """Each dependency's state; ``light=true`` checks none, so a liveness probe never restarts
    a healthy process because a database is down (readiness takes it out of rotation instead)."""
    if light:
        return JSONResponse({"status": "alive", "version": "0.1.0"})
    names = ("database", "redis", "object_store", "auth")
    *states, pending = await asyncio.gather(
        _check(db_ping(services.engine)),
        _check(services.redis.ping()),
        _check(services.store.ping()),
        _check(services.auth.check_service()),
        _outbox(services),
    )
    dependencies = dict(zip(names, states, strict=True))
    required = ("database", "redis", "object_store")
    healthy = all(dependencies[n] == "ok" for n in required)
    body = HealthResponse(
        status="healthy" if healthy else "unhealthy",
        dependencies=HealthDependencies(**dependencies),
        outbox=pending,
        version="0.1.0",
    )
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
