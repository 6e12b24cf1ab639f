"""The request side: an ASGI middleware for the request metrics and log line, and ``/metrics``.

``install(app)`` is the one call the app factory makes. The middleware sits inside the
request-id middleware, so its log line carries the request id; it labels everything with the
route *template* (``/management/users/{username}``), never the raw path, and ``<unmatched>``
for paths no route knows.
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import FastAPI, Request, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minio_manager.db.engine import transaction
from minio_manager.errors import ServiceError
from minio_manager.observability import metrics
from minio_manager.provisioning import outbox
from minio_manager.request_context import RequestInfo, request_info_var

log = logging.getLogger("minio_manager.request")

METRICS_PATH = "/metrics"
# Probes and scrapes arrive every few seconds per replica: their lines go to DEBUG.
QUIET_ROUTES = frozenset({"/health", METRICS_PATH})
BACKLOG_TIMEOUT_SECONDS = 2.0


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else metrics.UNMATCHED_ROUTE


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before answering, the outer middleware sends a 500
        info = RequestInfo()
        token = request_info_var.set(info)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            method = str(scope.get("method", ""))
            metrics.observe_request(method, route, status, elapsed)
            log.log(
                logging.DEBUG if route in QUIET_ROUTES else logging.INFO,
                "%s %s %s",
                method,
                route,
                status,
                extra={
                    "event": "request",
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_info_var.reset(token)


async def _read_backlog(request: Request) -> None:
    """Refresh the reconciler gauges from the outbox (one query per scrape; a database that
    does not answer leaves the last reading, and the failed call shows in the error counter)."""
    services = getattr(request.app.state, "services", None)
    if services is None:
        return
    try:
        async with asyncio.timeout(BACKLOG_TIMEOUT_SECONDS):
            async with transaction(services.engine) as conn:
                totals = await outbox.summary(conn)
    except (ServiceError, TimeoutError, SQLAlchemyError):
        log.debug("reconciler backlog not read for /metrics")
        return
    metrics.reconciler_backlog(totals.pending, totals.oldest_pending_seconds, totals.failing)


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text exposition (no authentication: serve it on a cluster-internal port or
    keep it from the Ingress; it holds counts and latencies, no names or secrets)."""
    await _read_backlog(request)
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)


def install(app: FastAPI) -> None:
    """Add the middleware and ``/metrics`` (left out of the OpenAPI document)."""
    app.add_middleware(ObservabilityMiddleware)
    app.add_api_route(METRICS_PATH, metrics_endpoint, methods=["GET"], include_in_schema=False)
