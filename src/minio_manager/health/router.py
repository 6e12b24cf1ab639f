"""/health: each dependency's state; 503 when one the service needs is down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from minio_manager.auth.deps import ServicesDep
from minio_manager.db.engine import ping as db_ping
from minio_manager.db.engine import transaction
from minio_manager.provisioning import outbox

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 3.0


async def _check(probe: Awaitable[Any]) -> str:
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


@router.get("/health")
async def health(services: ServicesDep) -> JSONResponse:
    names = ("database", "redis", "object_store", "auth")
    *states, pending = await asyncio.gather(
        _check(db_ping(services.engine)),
        _check(services.redis.ping()),
        _check(services.store.ping()),
        _check(services.auth.check_service()),
        _outbox(services),
    )
    dependencies = dict(zip(names, states, strict=True))
    # The auth service being down only blocks new logins; cached tokens keep working.
    required = ("database", "redis", "object_store")
    healthy = all(dependencies[n] == "ok" for n in required)
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "dependencies": dependencies,
        "outbox": pending,
        "version": "0.1.0",
    }
    return JSONResponse(body, status_code=200 if healthy else 503)
