"""The OpenAPI document, made to state every error answer the service really gives.

FastAPI documents the success answer and its own 422 model; this module replaces the error
part of every operation with the statuses the service can answer, all with the one envelope
(``ErrorEnvelope``). Most come from what the route is made of (a bearer caller → 401/403, query
or body → 422, a name in the path → 400 with its domain code); the rest (404 of an unknown
tenant, 409 of a lock, …) from ``ROUTE_ERRORS`` below, which must name every operation: a test
fails when a route is added without its entry. ``allowed_methods`` gives the ``Allow`` header
of a 405 (RFC 9110 §15.5.6) from the routes themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import Match, Mount, compile_path
from starlette.types import Scope

from minio_manager.auth.deps import get_caller


class ErrorEnvelope(BaseModel):
    """The one error body of every failure (SPEC §4)."""

    error: int
    error_type: str
    message: str


ENVELOPE_REF = "#/components/schemas/ErrorEnvelope"

# Per path parameter name: the answer to a value that breaks its declared rules or a domain
# rule (reserved names, the `ro` form where a base name is needed); see minio_manager.params.
_PATH_PARAM_CODES = {"username": "20030", "group": "20040", "tenant": "40010"}

_NOT_FOUND_USER = "20031"
_LOCKED = "20045"
_GROUP_BUSY = "20046"  # another change of the same group pair held its lock too long
_LOGIN_CONFLICT = "20032, 20045"  # unmanaged store user; credential lock held too long
_DATA_LEFT = "20053"  # objects the store refused to delete (repeat the call)
_LISTING = "40405"
"""``names`` in ``/management/users/{username}`` or ``/management/groups/{group}`` is the
listing's path: any other method there is 405 (minio_manager.params.NOT_LISTING)."""

ROUTE_ERRORS: dict[tuple[str, str], dict[int, str]] = {
    ("GET", "/health"): {},
    ("GET", "/credentials/"): {409: _LOGIN_CONFLICT},
    ("POST", "/credentials/rotate"): {409: _LOGIN_CONFLICT},
    ("POST", "/sharing/share"): {
        400: "20015, 30020",
        403: "20042",
        409: f"{_GROUP_BUSY}, 20047 (a target would exceed the store's attached-policy limit)",
    },
    ("POST", "/sharing/unshare"): {400: "20015, 30020", 403: "20042"},
    ("POST", "/sharing/make-public"): {
        400: "20015, 30020",
        403: "20042",
        409: "20047 (the public group would exceed the store's attached-policy limit)",
    },
    ("POST", "/sharing/make-private"): {400: "20015, 30020", 403: "20042"},
    ("POST", "/sharing/get_path_access_info"): {400: "20015, 30020", 403: "20042"},
    ("POST", "/management/migrate/regenerate-policies"): {},
    ("GET", "/management/migrate/policy-drift"): {},
    ("GET", "/management/outbox"): {},
    ("GET", "/management/audit"): {},
    ("GET", "/tenants"): {},
    ("GET", "/tenants/{tenant}"): {404: "40030"},
    ("POST", "/tenants/{tenant}"): {404: "40030", 409: _GROUP_BUSY},
    ("PATCH", "/tenants/{tenant}"): {403: "40020", 404: "40030", 409: _GROUP_BUSY},
    ("DELETE", "/tenants/{tenant}"): {404: "40030", 409: _GROUP_BUSY},
    ("GET", "/tenants/{tenant}/members"): {403: "40020", 404: "40030"},
    ("POST", "/tenants/{tenant}/members/{username}"): {
        403: "40020",
        404: f"40030, {_NOT_FOUND_USER}",
        409: _GROUP_BUSY,
    },
    ("DELETE", "/tenants/{tenant}/members/{username}"): {
        403: "40020",
        404: f"40030, {_NOT_FOUND_USER}",
        409: _GROUP_BUSY,
    },
    ("GET", "/tenants/{tenant}/stewards"): {403: "40020", 404: "40030"},
    ("POST", "/tenants/{tenant}/stewards/{username}"): {
        404: f"40030, {_NOT_FOUND_USER}",
        409: _GROUP_BUSY,
    },
    ("DELETE", "/tenants/{tenant}/stewards/{username}"): {
        404: f"40030, {_NOT_FOUND_USER}",
        409: _GROUP_BUSY,
    },
    ("GET", "/workspaces/me"): {404: _NOT_FOUND_USER},
    ("GET", "/workspaces/me/groups"): {},
    ("GET", "/workspaces/me/policies"): {404: _NOT_FOUND_USER},
    ("GET", "/workspaces/me/accessible-paths"): {404: _NOT_FOUND_USER},
    ("GET", "/workspaces/me/sql-warehouse-prefix"): {},
    ("GET", "/workspaces/me/namespace-prefix"): {400: "40010", 403: "40020", 404: "40030"},
    ("GET", "/workspaces/me/groups/{group}"): {403: "40020", 404: "20041"},
    ("GET", "/workspaces/me/groups/{group}/sql-warehouse-prefix"): {403: "40020", 404: "20041"},
    ("GET", "/management/users/names"): {},
    ("GET", "/management/users"): {},
    ("POST", "/management/users/{username}"): {405: _LISTING, 409: _LOGIN_CONFLICT},
    ("POST", "/management/users/{username}/rotate-credentials"): {
        404: _NOT_FOUND_USER,
        409: _LOGIN_CONFLICT,
    },
    ("POST", "/management/users/{username}/adopt"): {404: _NOT_FOUND_USER, 409: _LOCKED},
    ("DELETE", "/management/users/{username}"): {
        404: _NOT_FOUND_USER,
        405: _LISTING,
        409: f"{_LOCKED}, {_DATA_LEFT}",
    },
    ("POST", "/management/credentials/rotate-all-credentials"): {},
    ("GET", "/management/groups"): {},
    ("GET", "/management/groups/names"): {},
    ("POST", "/management/groups/{group}"): {405: _LISTING, 409: _GROUP_BUSY},
    ("POST", "/management/groups/{group}/members/{username}"): {
        404: f"20041, {_NOT_FOUND_USER}",
        409: _GROUP_BUSY,
    },
    ("DELETE", "/management/groups/{group}/members/{username}"): {
        404: f"20041, {_NOT_FOUND_USER}",
        409: _GROUP_BUSY,
    },
    ("DELETE", "/management/groups/{group}"): {
        404: "20041",
        405: _LISTING,
        409: f"{_GROUP_BUSY}, {_DATA_LEFT}",
    },
}
"""Domain answers per operation beyond those its shape implies: status → codes."""

_TITLES = {
    400: "Bad request",
    401: "No, malformed or rejected token",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed (`names` is the listing's path)",
    409: "Conflict (a lock is held too long)",
    413: "Request body too large (sent before the body is read or the caller authenticated)",
    422: "Invalid request",
    429: "Busy: a queue or pool stayed full; retry after `Retry-After` seconds",
    500: "Internal error",
    502: "The object store refused an operation",
    503: "A dependency is unavailable",
}


def _calls(dependant: Dependant) -> Iterable[Callable[..., Any] | None]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def api_routes(app: FastAPI) -> list[Any]:
    """Every API route with its full path (routers are included as wrappers, so flatten)."""
    return [
        context
        for context in routing.iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
    ]


def route_errors(route: Any, method: str) -> dict[int, list[str]]:
    """Every error status ``method`` on ``route`` can answer, with its codes."""
    found: dict[int, list[str]] = {413: ["30030"], 500: ["50000"]}

    def add(status: int, codes: str) -> None:
        found.setdefault(status, []).extend(c.strip() for c in codes.split(",") if c.strip())

    dependant = route.dependant
    if get_caller in set(_calls(dependant)):
        add(401, "10010, 10020, 10030")
        add(403, "10040")
        add(502, "20051")
        add(429, "50040")
        add(503, "20050, 50010, 50020, 50030")
    if dependant.query_params or dependant.body_params:
        add(422, "30010")
    for param in dependant.path_params:
        code = _PATH_PARAM_CODES.get(param.name)
        if code is not None:
            add(400, code)
    # A route missing from the table still gets the answers its shape implies; the test suite
    # fails until it is added (tests/integration/test_limits_openapi.py).
    for status, codes in ROUTE_ERRORS.get((method, route.path_format), {}).items():
        add(status, codes)
    return {status: sorted(set(codes)) for status, codes in sorted(found.items())}


def _envelope_response(status: int, codes: list[str]) -> dict[str, Any]:
    return {
        "description": f"{_TITLES.get(status, 'Error')} (codes {', '.join(codes)})",
        "content": {"application/json": {"schema": {"$ref": ENVELOPE_REF}}},
    }


def _document_errors(app: FastAPI, schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorEnvelope"] = ErrorEnvelope.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    for route in api_routes(app):
        if not route.include_in_schema:
            continue
        for method in sorted(route.methods or ()):
            operation = schema["paths"][route.path_format][method.lower()]
            responses: dict[str, Any] = operation["responses"]
            declared = {str(s) for s in route.responses}
            for key in list(responses):
                # FastAPI's own 422 (HTTPValidationError) is never what the service sends.
                if key.startswith(("4", "5")) and key not in declared:
                    del responses[key]
            for status, codes in route_errors(route, method).items():
                if str(status) not in declared:
                    responses[str(status)] = _envelope_response(status, codes)
            operation["responses"] = dict(sorted(responses.items()))
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the document with every error answer in it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            _document_errors(app, schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """The methods some route serves at the request's path (for a 405's ``Allow``)."""
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, Mount) and route.matches(scope)[0] is not Match.NONE:
            methods.update(("GET", "HEAD"))  # the docs assets (StaticFiles)
    for context in routing.iter_route_contexts(app.routes):
        if context.methods and context.path:
            # ``path``, not ``path_format``: it keeps convertors such as ``not_listing``.
            regex, _, _ = compile_path(context.path)
            if regex.match(path):
                methods.update(context.methods)
    return sorted(methods)
