"""What the sync and async clients share: request building, answer handling, retry decisions.

Only the waiting differs between the two (``time.sleep`` vs ``asyncio.sleep``), so every
decision — which failures are worth another attempt, how long to wait, how an answer becomes a
result or an exception — lives here once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import httpx

from minio_manager_client.errors import (
    ConnectionFailedError,
    MinioManagerError,
    error_from_response,
)

USER_AGENT: Final = "minio-manager-client/0.1"
# 429: the service is busy (shedding load). 503: a dependency is down and nothing was done.
# 502/504: a proxy in front
# of it says the same. Any other status is an answer that a retry would only repeat.
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with capped, jittered exponential backoff.

    ``attempts`` counts every try (1 = no retry). A ``Retry-After`` header in seconds is
    honoured up to ``max_delay``. Jitter spreads the retries of many hub spawns that failed at
    the same moment, so they do not hit a recovering service together.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), self.max_delay)
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret


NO_RETRY: Final = RetryPolicy(attempts=1)


def normalise_base_url(base_url: str) -> str:
    """The service root without a trailing slash (it may sit behind a path prefix)."""
    url = base_url.strip()
    if not url.startswith(("http://", "https://")):
        raise ValueError("base_url must start with http:// or https://")
    return url.rstrip("/")


def auth_headers(token: str | None) -> dict[str, str]:
    """Request headers; the token goes in ``Authorization`` only, never in a URL."""
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if token is not None:
        if not token.strip() or any(c in token for c in "\r\n"):
            raise ValueError("token must be a non-empty single line")
        headers["Authorization"] = f"Bearer {token.strip()}"
    return headers


def segment(value: str) -> str:
    """One URL path segment (a group or tenant name), escaped so it cannot add segments."""
    if not value:
        raise ValueError("a path segment must not be empty")
    return quote(value, safe="")


def should_retry_status(status: int) -> bool:
    return status in RETRY_STATUSES


def should_retry_exception(exc: httpx.TransportError, method: str, idempotent: bool) -> bool:
    """Whether a failure without an answer is worth another try.

    A connection that was never made cannot have changed anything, so any method may retry
    it. Once a request may have reached the service, only idempotent calls are repeated.
    """
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return True
    return idempotent or method.upper() in IDEMPOTENT_METHODS


def connection_error(exc: httpx.TransportError, attempts: int) -> ConnectionFailedError:
    """The exception for a call that never got an answer; names the failure, not the URL's
    query or headers (the token lives in a header and must not reach a message)."""
    kind = type(exc).__name__
    return ConnectionFailedError(
        f"the MinIO Manager Service could not be reached ({kind}) after {attempts} attempt(s)"
    )


def parse_answer(response: httpx.Response) -> Any:
    """The JSON body of a success, or the exception built from the error envelope."""
    request_id = response.headers.get("x-request-id")
    try:
        body: Any = response.json() if response.content else None
    except ValueError:
        body = None
    if response.is_success:
        if body is None and response.status_code != 204:
            raise MinioManagerError(
                "the service answered without a JSON body",
                status=response.status_code,
                request_id=request_id,
            )
        return body
    raise error_from_response(response.status_code, body, request_id)


def timeout_of(timeout: float | httpx.Timeout) -> httpx.Timeout:
    """A total per-try limit, with a shorter connect limit so a dead host fails fast."""
    if isinstance(timeout, httpx.Timeout):
        return timeout
    return httpx.Timeout(timeout, connect=min(timeout, 5.0))
