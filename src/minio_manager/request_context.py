"""Per-request values that deep layers need without threading them through every call."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


@dataclass
class RequestInfo:
    """Filled in as the request is served; mutable, so whoever holds it sees later values
    (the caller is only known once authentication has run, deep inside the route)."""

    user: str | None = None


request_info_var: ContextVar[RequestInfo | None] = ContextVar("request_info", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()


def current_user() -> str | None:
    info = request_info_var.get()
    return info.user if info is not None else None


def set_current_user(username: str) -> None:
    """Called once the caller is authenticated, for the request's log lines."""
    info = request_info_var.get()
    if info is not None:
        info.user = username
