"""The HTTP side of ``mms``: one httpx client, the error envelope, and exit codes.

Exit codes (also in ``mms --help`` and the README):

====  ==========================================================================
0     success
1     usage error (bad arguments, missing token or URL, refused confirmation)
2     authentication or authorisation failed (HTTP 401, 403)
3     not found (HTTP 404)
4     conflict or invalid request (HTTP 400, 409, 422), or a partial success (207)
5     the service or one of its dependencies is unavailable (HTTP 502, 503,
      unreachable, timed out)
6     any other failure (e.g. HTTP 500)
====  ==========================================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

OK, USAGE, AUTH, NOT_FOUND, CONFLICT, UNAVAILABLE, FAILED = range(7)
DEFAULT_URL = "http://127.0.0.1:8000"


class CliError(Exception):
    """Ends the command with ``code`` after printing ``message`` on stderr."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def exit_code_for(status: int) -> int:
    if status in (401, 403):
        return AUTH
    if status == 404:
        return NOT_FOUND
    if status in (207, 400, 409, 422):
        return CONFLICT
    if status in (502, 503, 504):
        return UNAVAILABLE
    return FAILED


def read_token(token_file: str | None) -> str:
    """``--token-file`` first, then ``MMS_TOKEN``; never a command-line value (``ps`` shows
    those to every user of the machine)."""
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            raise CliError(f"cannot read the token file: {exc.strerror}", USAGE) from None
    else:
        token = os.environ.get("MMS_TOKEN", "").strip()
    if not token:
        raise CliError("no token: set MMS_TOKEN or pass --token-file", USAGE)
    return token


@dataclass
class Api:
    """Calls the service; every non-2xx answer becomes a ``CliError`` with its exit code."""

    http: httpx.Client

    @classmethod
    def connect(cls, url: str, token: str, timeout: float) -> Api:
        return cls(
            httpx.Client(
                base_url=url.rstrip("/"),
                headers={"Authorization": f"Bearer {token}", "User-Agent": "mms-cli"},
                timeout=timeout,
            )
        )

    def close(self) -> None:
        self.http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        partial_ok: bool = False,
    ) -> Any:
        try:
            response = self.http.request(method, path, json=json, params=params)
        except httpx.TimeoutException:
            raise CliError("the service did not answer in time", UNAVAILABLE) from None
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach the service ({type(exc).__name__})", UNAVAILABLE
            ) from None
        if response.status_code == 207 and partial_ok:
            return response.json()
        if response.status_code >= 300 or response.status_code == 207:
            raise CliError(_describe(response), exit_code_for(response.status_code))
        if response.status_code == 204 or not response.content:
            return None
        return response.json()


def _describe(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "message" in body:
        return f"{body['message']} (HTTP {response.status_code}, {body.get('error_type')})"
    return f"HTTP {response.status_code}"
