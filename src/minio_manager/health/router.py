"""/health: each dependency's state; 503 when one the service needs is down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from minio_manager.auth.deps import ServicesDep
from minio_manager.db.engine import ping as db_ping

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 3.0


async def _check(probe: Awaitable[Any]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except Exception:
        return "unavailable"
    return "ok"


@router.get("/health")
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
    states = await asyncio.gather(
        _check(db_ping(services.engine)),
        _check(services.redis.ping()),
        _check(services.store.ping()),
        _check(services.auth.check_service()),
    )
    dependencies = dict(zip(names, states, strict=True))
    # The auth service being down only blocks new logins; cached tokens keep working.
    required = ("database", "redis", "object_store")
    healthy = all(dependencies[n] == "ok" for n in required)
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "dependencies": dependencies,
        "version": "0.1.0",
    }
    return JSONResponse(body, status_code=200 if healthy else 503)
