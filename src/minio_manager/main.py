"""App factory: settings, migrations, wiring, the one error envelope, routers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minio_manager.audit.router import router as audit_router
from minio_manager.auth.deps import bearer_token
from minio_manager.bootstrap import Services, build_services
from minio_manager.checkpoints import install_from_env as install_checkpoints_from_env
from minio_manager.config import Settings, get_settings
from minio_manager.credentials.router import router as credentials_router
from minio_manager.db.engine import is_data_error, transaction
from minio_manager.db.migrations import upgrade_to_head
from minio_manager.docs_ui import install_docs
from minio_manager.errors import (
    AuthServiceUnavailable,
    InternalError,
    NotFound,
    ObjectStoreRefused,
    RequestValidationFailed,
    ServiceBusy,
    ServiceError,
    error_body,
)
from minio_manager.health.router import router as health_router
from minio_manager.limits import BodySizeLimit
from minio_manager.management.policies_router import outbox_router
from minio_manager.management.policies_router import router as policies_router
from minio_manager.management.router import router as management_router
from minio_manager.objectstore.errors import StoreRejected
from minio_manager.observability import http as observability
from minio_manager.observability.logging import configure_logging
from minio_manager.openapi import ErrorEnvelope, allowed_methods, install_openapi
from minio_manager.params import domain_error_for_path
from minio_manager.request_context import request_id_var
from minio_manager.sharing.router import router as sharing_router
from minio_manager.tenants import register as group_register
from minio_manager.tenants.router import router as tenants_router
from minio_manager.workspaces.router import router as workspaces_router

log = logging.getLogger("minio_manager")

__all__ = ["ErrorEnvelope", "create_app"]


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
    await upgrade_to_head(settings)
    app.state.services = build_services(settings)
    install_checkpoints_from_env()
    filling: asyncio.Task[None] | None = None
    try:
        await _startup_checks(settings, app)
        filling = await _fill_group_register(app.state.services)
        # Finishes whatever this or a crashed replica left pending (see docs/decisions.md).
        app.state.services.reconciler.start()
        _freeze_startup_objects()
        yield
    finally:
        if filling is not None:
            filling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await filling
        await app.state.services.close()


def _freeze_startup_objects() -> None:
    """Keep the ~200 000 objects of imports and wiring out of every later full collection.

    A full (generation-2) collection scans every tracked object; under load one ran every
    ~3 s and stalled the event loop 120–240 ms, which was the p99 of ``GET /tenants`` at c=16
    (issue 12; docs/benchmarks.md). Frozen objects are never scanned again; they live as long
    as the process anyway. Garbage made before the freeze is collected first."""
    gc.collect()
    gc.freeze()
    log.info("start-up objects frozen out of the garbage collector: %d", gc.get_freeze_count())


async def _fill_group_register(services: Services) -> asyncio.Task[None] | None:
    """Fill the group register from the store if it never was (tenants/register.py): before
    serving when the store answers, else in the background until it does."""
    try:
        await group_register.fill_once(services.engine, services.store)
        return None
    except Exception as exc:  # any failure: the background task tries again
        log.warning("group register not filled at start-up: %s", type(exc).__name__)
    return asyncio.get_running_loop().create_task(
        group_register.fill_until_done(services.engine, services.store, retry_seconds=5.0)
    )


def _envelope(error: ServiceError) -> JSONResponse:
    response = JSONResponse(error_body(error), status_code=error.status)
    if isinstance(error, ServiceBusy):
        response.headers["Retry-After"] = str(error.retry_after_seconds)
    return response


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _clean_request_id(value: str | None) -> str:
    """Echo a caller's id only if it is short and plain (it lands in logs and the audit)."""
    if value and _REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def _needs_auth(request: Request) -> bool:
    return not request.url.path.rstrip("/").endswith("/health")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return _envelope(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI parses the body before it resolves dependencies; a caller without a usable
        # Authorization header must still hear 401 first (SPEC §3), not a body complaint.
        if request.scope.get("route") is not None and _needs_auth(request):
            try:
                bearer_token(request)
            except ServiceError as auth_error:
                return _envelope(auth_error)
        # A name in the path is checked first and answered with its domain code (400), as the
        # service always has; the OpenAPI declares the rule (minio_manager.params).
        for err in exc.errors():
            loc = err.get("loc", ())
            if len(loc) == 2 and loc[0] == "path":
                domain = domain_error_for_path(str(loc[1]), err.get("input"))
                if domain is not None:
                    return _envelope(domain)
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return _envelope(RequestValidationFailed("invalid request: " + "; ".join(parts)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _envelope(NotFound("no such endpoint"))
        error = ServiceError(str(exc.detail))
        error.status = exc.status_code
        error.code = 40000 + exc.status_code
        error.error_type = "http_error"
        response = _envelope(error)
        if exc.status_code == 405:
            # Starlette names only the first route matching the path; RFC 9110 wants every
            # method the path serves.
            allowed = allowed_methods(app, request.scope)
            response.headers["Allow"] = ", ".join(allowed) or (exc.headers or {}).get("Allow", "")
        return response

    @app.exception_handler(StoreRejected)
    async def store_rejected(_: Request, exc: StoreRejected) -> JSONResponse:
        # The store's own text may name internals; it goes to the log, the caller gets the code.
        log.warning(
            "object store refused an operation (request %s): %s %s",
            request_id_var.get(),
            exc.code,
            exc.message,
        )
        return _envelope(ObjectStoreRefused(f"the object store refused the operation ({exc.code})"))

    @app.exception_handler(DBAPIError)
    async def database_error(_: Request, exc: DBAPIError) -> JSONResponse:
        # hide_parameters keeps bound values out of ``exc``; asyncpg's own DataError text may
        # still quote a value, so only the class name is logged.
        if is_data_error(exc):
            log.info("database refused a value: %s", type(exc.orig).__name__)
            return _envelope(RequestValidationFailed("a value is not acceptable (e.g. NUL)"))
        log.error("database error %s", type(exc.orig).__name__)
        return _envelope(InternalError("internal error; see the service log"))


class RequestIdMiddleware:
    """Request id in, ``X-Request-ID`` out, and the envelope for anything unhandled.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware``
    runs every request in an extra task and re-streams the response through memory streams,
    which was a large share of the hot path's CPU (issue 12); this costs one header append.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id_from(scope)
        header = (b"x-request-id", rid.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = request_id_var.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Logged once, here, with the request id; the client gets the envelope and the id.
            log.error("unhandled %s (request %s)", type(exc).__name__, rid, exc_info=exc)
            if started:
                raise
            response = _envelope(InternalError(f"internal error; request id {rid}"))
            await response(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


def _request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            return _clean_request_id(value.decode("latin-1"))
    return _clean_request_id(None)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; ``settings`` defaults to the environment (tests pass their own)."""
    settings = settings or get_settings()
    # Before uvicorn's own start-up lines, so that a JSON deployment has JSON lines only.
    configure_logging(settings.log_level, settings.log_format)
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
    observability.install(app)  # inside the request-id middleware below: its lines carry the id

    app.add_middleware(RequestIdMiddleware)

    # Added last, so outermost: an oversized body is refused before any other layer runs.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_body_bytes)

    for router in (
        health_router,
        credentials_router,
        sharing_router,
        policies_router,
        outbox_router,
        audit_router,
        tenants_router,
        workspaces_router,
        management_router,
    ):
        app.include_router(router)
    install_openapi(app)
    return app


def __getattr__(name: str) -> FastAPI:
    """``minio_manager.main:app`` builds the app lazily, so importing needs no environment."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
