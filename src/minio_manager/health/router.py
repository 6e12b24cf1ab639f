"""/health: each dependency's state; 503 when one the service needs is down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from minio_manager.auth.deps import ServicesDep
from minio_manager.db.engine import ping as db_ping

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 3.0

DependencyState = Literal["ok", "unavailable"]


class HealthDependencies(BaseModel):
    database: DependencyState
    redis: DependencyState
    object_store: DependencyState
    auth: DependencyState


class HealthResponse(BaseModel):
    """The same body for 200 and 503, so a load balancer and a person read one shape."""

    status: Literal["healthy", "unhealthy"]
    dependencies: HealthDependencies
    version: str


async def _check(probe: Awaitable[Any]) -> DependencyState:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except Exception:
        return "unavailable"
    return "ok"


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
async def health(services: ServicesDep) -> JSONResponse:
    """No token needed; KBase auth being down only blocks new logins, so it does not count."""
    names = ("database", "redis", "object_store", "auth")
    states = await asyncio.gather(
        _check(db_ping(services.engine)),
        _check(services.redis.ping()),
        _check(services.store.ping()),
        _check(services.auth.check_service()),
    )
    dependencies = dict(zip(names, states, strict=True))
    required = ("database", "redis", "object_store")
    healthy = all(dependencies[n] == "ok" for n in required)
    body = HealthResponse(
        status="healthy" if healthy else "unhealthy",
        dependencies=HealthDependencies(**dependencies),
        version="0.1.0",
    )
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
