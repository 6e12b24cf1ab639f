"""Latency and error hooks attached to the clients the adapters already own.

Each hook wraps a client from the outside (an httpx transport, Redis' ``execute_command``,
SQLAlchemy's cursor events), so the adapters' code paths stay as they are and every call —
including retries and the lock's Lua scripts — is measured exactly once, at the wire.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine

from minio_manager.observability.metrics import observe_dependency

ADMIN_PREFIX = "/minio/admin/v3/"
SQL_VERBS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "LOCK", "CREATE", "ALTER"})
KBASE_OPERATIONS = {"token": "token", "me": "me", "users": "users"}


class TimedTransport(httpx.AsyncBaseTransport):
    """Times every request sent through ``inner``; transport failures and 5xx count as errors."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        dependency: str,
        operation: Callable[[httpx.Request], str],
    ) -> None:
        self._inner = inner
        self._dependency = dependency
        self._operation = operation

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        operation = self._operation(request)
        started = time.perf_counter()
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TimeoutException:
            elapsed = time.perf_counter() - started
            observe_dependency(self._dependency, operation, elapsed, "timeout")
            raise
        except httpx.TransportError:
            elapsed = time.perf_counter() - started
            observe_dependency(self._dependency, operation, elapsed, "unreachable")
            raise
        error = "5xx" if response.status_code >= 500 else None
        observe_dependency(self._dependency, operation, time.perf_counter() - started, error)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def instrument_http_client(
    client: httpx.AsyncClient, dependency: str, operation: Callable[[httpx.Request], str]
) -> None:
    """Route ``client``'s requests through a ``TimedTransport`` (idempotent)."""
    inner = client._transport
    if not isinstance(inner, TimedTransport):
        client._transport = TimedTransport(inner, dependency, operation)


def object_store_operation(request: httpx.Request) -> str:
    """``admin:add-user`` for the admin API, ``s3:PUT`` for S3 calls, ``health`` for pings."""
    path = request.url.path
    if path.startswith(ADMIN_PREFIX):
        return "admin:" + path[len(ADMIN_PREFIX) :].split("/", 1)[0]
    if path.startswith("/minio/health"):
        return "health"
    return "s3:" + request.method


def kbase_operation(request: httpx.Request) -> str:
    """``me``, ``token``, ``users`` or ``service`` (the root document)."""
    last = [p for p in request.url.path.split("/") if p][-1:] or [""]
    return KBASE_OPERATIONS.get(last[0], "service")


def instrument_redis(redis: Redis) -> None:
    """Time every command (locks run as EVALSHA) by wrapping this client's ``execute_command``."""
    if getattr(redis, "_mms_instrumented", False):
        return
    original = redis.execute_command

    async def execute_command(*args: Any, **options: Any) -> Any:
        operation = str(args[0]).split(" ", 1)[0].upper() if args else "?"
        started = time.perf_counter()
        try:
            result = await original(*args, **options)  # type: ignore[no-untyped-call]
        except Exception as exc:
            observe_dependency("redis", operation, time.perf_counter() - started, _kind(exc))
            raise
        observe_dependency("redis", operation, time.perf_counter() - started)
        return result

    redis.execute_command = execute_command  # type: ignore[method-assign]
    redis._mms_instrumented = True  # type: ignore[attr-defined]


def _kind(exc: BaseException) -> str:
    name = type(exc).__name__
    if "Timeout" in name:
        return "timeout"
    if "Connection" in name or isinstance(exc, OSError):
        return "unreachable"
    return "error"


def _sql_operation(statement: str) -> str:
    verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
    return verb if verb in SQL_VERBS else "OTHER"


_STARTED = "_mms_started"


def instrument_engine(engine: AsyncEngine) -> None:
    """Time every statement; driver errors (including failed connects) count as errors.

    The start time rides on the statement's execution context, never on the connection: in
    ``handle_error`` the connection may already be invalidated, and touching it there would
    replace the original error with another one.
    """
    sync_engine = engine.sync_engine
    if getattr(sync_engine, "_mms_instrumented", False):
        return

    def before(
        _conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: Any
    ) -> None:
        if context is not None:
            setattr(context, _STARTED, time.perf_counter())

    def after(
        _conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: Any
    ) -> None:
        started = getattr(context, _STARTED, None)
        if started is not None:
            observe_dependency("postgres", _sql_operation(statement), time.perf_counter() - started)

    def failed(context: ExceptionContext) -> None:
        started = getattr(context.execution_context, _STARTED, None)
        elapsed = time.perf_counter() - started if started is not None else 0.0
        operation = _sql_operation(context.statement) if context.statement else "connect"
        observe_dependency("postgres", operation, elapsed, _kind(context.original_exception))

    event.listen(sync_engine, "before_cursor_execute", before)
    event.listen(sync_engine, "after_cursor_execute", after)
    event.listen(sync_engine, "handle_error", failed)
    sync_engine._mms_instrumented = True  # type: ignore[attr-defined]
