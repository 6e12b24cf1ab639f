"""App factory: settings, migrations, wiring, the one error envelope, routers."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from minio_manager.audit.router import router as audit_router
from minio_manager.config import Settings, get_settings
from minio_manager.credentials.router import router as credentials_router
from minio_manager.db.engine import transaction
from minio_manager.db.migrations import upgrade_to_head
from minio_manager.docs_ui import install_docs
from minio_manager.errors import (
    AuthServiceUnavailable,
    InternalError,
    NotFound,
    RequestValidationFailed,
    ServiceError,
    error_body,
)
from minio_manager.health.router import router as health_router
from minio_manager.management.policies_router import router as policies_router
from minio_manager.management.router import router as management_router
from minio_manager.request_context import request_id_var
from minio_manager.services import build_services
from minio_manager.sharing.router import router as sharing_router
from minio_manager.tenants.router import router as tenants_router
from minio_manager.workspaces.router import router as workspaces_router

log = logging.getLogger("minio_manager")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # httpx logs full URLs at INFO; the admin API's query strings hold no secrets, but keep
    # transport chatter out of the service log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


async def _startup_checks(settings: Settings, app: FastAPI) -> None:
    services = app.state.services
    async with transaction(services.engine) as conn:
        found = (
            await conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'pgcrypto'"))
        ).first()
    if found is None:
        raise RuntimeError("the pgcrypto extension is missing in the service database")
    await services.redis.ping()
    try:
        await services.auth.check_service()
    except AuthServiceUnavailable as exc:
        log.warning("KBase auth check at start-up failed: %s", exc.message)
    try:
        await services.store.ping()
    except ServiceError as exc:
        log.warning("object store check at start-up failed: %s", exc.message)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    configure_logging(settings.log_level)
    await upgrade_to_head(settings)
    app.state.services = build_services(settings)
    try:
        await _startup_checks(settings, app)
        yield
    finally:
        await app.state.services.close()


def _envelope(error: ServiceError) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=error.status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return _envelope(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return _envelope(RequestValidationFailed("invalid request: " + "; ".join(parts)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _envelope(NotFound("no such endpoint"))
        error = ServiceError(str(exc.detail))
        error.status = exc.status_code
        error.code = 40000 + exc.status_code
        error.error_type = "http_error"
        return _envelope(error)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s", type(exc).__name__, exc_info=exc)
        return _envelope(InternalError("internal error; see the service log"))


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; ``settings`` defaults to the environment (tests pass their own)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="MinIO Manager Service",
        version="0.1.0",
        description=(
            "Data governance for the lakehouse: per-user object-store credentials, tenants, "
            "sharing, and the IAM policies that enforce them."
        ),
        lifespan=lifespan,
        root_path=settings.service_root_path,
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app, settings.service_root_path)
    app.state.settings = settings
    _install_error_handlers(app)

    @app.middleware("http")
    async def request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        token = request_id_var.set(rid[:64])
        try:
            response = await call_next(request)
        finally:
            request_id_var.reset(token)
        response.headers["X-Request-ID"] = rid[:64]
        return response

    for router in (
        health_router,
        credentials_router,
        sharing_router,
        policies_router,
        audit_router,
        tenants_router,
        workspaces_router,
        management_router,
    ):
        app.include_router(router)
    return app


def __getattr__(name: str) -> FastAPI:
    """``minio_manager.main:app`` builds the app lazily, so importing needs no environment."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
