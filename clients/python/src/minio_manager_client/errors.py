"""Exceptions for the service's one error envelope.

The service answers every failure as ``{"error": <int code>, "error_type": <str>,
"message": <str>}``; callers mostly branch on the HTTP status (log in again, ask a steward,
retry later), so there is one subclass per status family and the code stays available for the
finer cases. Messages come from the service, which never puts a secret in them.
"""

from __future__ import annotations

from typing import Any


class MinioManagerError(Exception):
    """Base of every error this client raises.

    ``status`` is the HTTP status (``None`` when no answer arrived), ``code`` and
    ``error_type`` come from the envelope (``None`` when the body was not one, e.g. a proxy's
    HTML page), ``request_id`` is the service's ``X-Request-ID`` for its logs.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.error_type = error_type
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code is not None:
            parts.append(f"code {self.code}")
        if self.request_id:
            parts.append(f"request {self.request_id}")
        return parts[0] if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"


class AuthenticationError(MinioManagerError):
    """401: no, malformed, expired or revoked KBase token — the user must log in again."""


class ForbiddenError(MinioManagerError):
    """403: a missing KBase role, or an action the caller may not take."""


class NotFoundError(MinioManagerError):
    """404: unknown user, group, tenant or path."""


class ConflictError(MinioManagerError):
    """409: e.g. the per-user credential lock was busy past its wait limit (code 20045)."""


class ValidationError(MinioManagerError):
    """400 or 422: the request itself was refused (bad name, bad path, bad body)."""


class ServiceUnavailableError(MinioManagerError):
    """503 (or 502/504) after the retries: a dependency of the service is down."""


class ConnectionFailedError(ServiceUnavailableError):
    """No answer at all after the retries: refused connection, DNS failure or timeout."""


_BY_STATUS: dict[int, type[MinioManagerError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    429: ServiceUnavailableError,
    422: ValidationError,
    502: ServiceUnavailableError,
    503: ServiceUnavailableError,
    504: ServiceUnavailableError,
}


def error_from_response(status: int, body: Any, request_id: str | None) -> MinioManagerError:
    """The exception for one non-success answer, from the envelope when there is one."""
    cls = _BY_STATUS.get(status, MinioManagerError)
    if (
        isinstance(body, dict)
        and isinstance(body.get("error"), int)
        and isinstance(body.get("message"), str)
    ):
        error_type = body.get("error_type")
        return cls(
            body["message"],
            status=status,
            code=body["error"],
            error_type=error_type if isinstance(error_type, str) else None,
            request_id=request_id,
        )
    return cls("unexpected answer from the service", status=status, request_id=request_id)
