"""Async and sync clients for the calls a notebook user or a spawn hook makes.

Both take the caller's KBase token and speak the service's HTTP API (``/credentials/``,
``/credentials/rotate``, ``/workspaces/me…``); ``request`` reaches any other route (admin
tools use it) with the same error handling and retries. A client holds one connection pool:
create it once, use it as a context manager or call ``close``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from minio_manager_client._core import (
    RetryPolicy,
    auth_headers,
    connection_error,
    normalise_base_url,
    parse_answer,
    segment,
    should_retry_exception,
    should_retry_status,
    timeout_of,
)
from minio_manager_client.models import (
    AccessiblePaths,
    Credentials,
    GroupWorkspace,
    NamespacePrefix,
    SqlWarehousePrefix,
    UserGroups,
    UserPolicies,
    Workspace,
)

T = TypeVar("T")
DEFAULT_TIMEOUT = 30.0
# A 202 is a success: the change is recorded and its body says ``"enforcement": "pending"``
# (the service's outbox applies it to the store within seconds). It is returned, never
# repeated — repeating would only record the same change again.


class AsyncMinioManagerClient:
    """The service's API as coroutines.

    ``async with AsyncMinioManagerClient(url, token) as mms: await mms.get_credentials()``.

    ``transport`` lets tests (or an in-process app via ``httpx.ASGITransport``) stand in for
    the network; ``retry`` bounds how hard a call tries before it raises.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: bool | str = True,
    ) -> None:
        self.base_url = normalise_base_url(base_url)
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=auth_headers(token),
            timeout=timeout_of(timeout),
            transport=transport,
            verify=verify,
            follow_redirects=False,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        idempotent: bool = False,
    ) -> Any:
        """One API call with retries; the parsed JSON body, or an exception from the envelope."""
        last: httpx.Response | None = None
        for attempt in range(1, self.retry.attempts + 1):
            try:
                last = await self._http.request(method, path, params=params, json=json)
            except httpx.TransportError as exc:
                if attempt == self.retry.attempts or not should_retry_exception(
                    exc, method, idempotent
                ):
                    raise connection_error(exc, attempt) from None
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            if not should_retry_status(last.status_code):
                return parse_answer(last)
            if attempt < self.retry.attempts:
                await asyncio.sleep(self.retry.delay(attempt, last.headers.get("retry-after")))
        assert last is not None
        return parse_answer(last)

    async def _get(self, path: str, parse: Callable[[Any], T], **params: Any) -> T:
        query = {k: v for k, v in params.items() if v is not None}
        return parse(await self.request("GET", path, params=query or None))

    async def get_credentials(self) -> Credentials:
        """Your key pair; the first call provisions you (user, policies, home markers)."""
        return await self._get("/credentials/", Credentials.from_json)

    async def rotate_credentials(self) -> Credentials:
        """A new secret; the old one stops working. Retried like a read: a repeated rotation
        still leaves you with one working pair, the one returned."""
        body = await self.request("POST", "/credentials/rotate", idempotent=True)
        return Credentials.from_json(body)

    async def get_workspace(self) -> Workspace:
        return await self._get("/workspaces/me", Workspace.from_json)

    async def get_groups(self) -> UserGroups:
        return await self._get("/workspaces/me/groups", UserGroups.from_json)

    async def get_policies(self) -> UserPolicies:
        return await self._get("/workspaces/me/policies", UserPolicies.from_json)

    async def get_accessible_paths(self) -> AccessiblePaths:
        return await self._get("/workspaces/me/accessible-paths", AccessiblePaths.from_json)

    async def get_group_workspace(self, group: str) -> GroupWorkspace:
        return await self._get(f"/workspaces/me/groups/{segment(group)}", GroupWorkspace.from_json)

    async def get_group_sql_warehouse_prefix(self, group: str) -> SqlWarehousePrefix:
        path = f"/workspaces/me/groups/{segment(group)}/sql-warehouse-prefix"
        return await self._get(path, SqlWarehousePrefix.from_json)

    async def get_sql_warehouse_prefix(self) -> SqlWarehousePrefix:
        return await self._get("/workspaces/me/sql-warehouse-prefix", SqlWarehousePrefix.from_json)

    async def get_namespace_prefix(self, tenant: str | None = None) -> NamespacePrefix:
        return await self._get(
            "/workspaces/me/namespace-prefix", NamespacePrefix.from_json, tenant=tenant
        )


class MinioManagerClient:
    """The blocking twin of :class:`AsyncMinioManagerClient`, for scripts and notebooks."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        verify: bool | str = True,
    ) -> None:
        self.base_url = normalise_base_url(base_url)
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=auth_headers(token),
            timeout=timeout_of(timeout),
            transport=transport,
            verify=verify,
            follow_redirects=False,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        idempotent: bool = False,
    ) -> Any:
        """One API call with retries; the parsed JSON body, or an exception from the envelope."""
        last: httpx.Response | None = None
        for attempt in range(1, self.retry.attempts + 1):
            try:
                last = self._http.request(method, path, params=params, json=json)
            except httpx.TransportError as exc:
                if attempt == self.retry.attempts or not should_retry_exception(
                    exc, method, idempotent
                ):
                    raise connection_error(exc, attempt) from None
                time.sleep(self.retry.delay(attempt))
                continue
            if not should_retry_status(last.status_code):
                return parse_answer(last)
            if attempt < self.retry.attempts:
                time.sleep(self.retry.delay(attempt, last.headers.get("retry-after")))
        assert last is not None
        return parse_answer(last)

    def _get(self, path: str, parse: Callable[[Any], T], **params: Any) -> T:
        query = {k: v for k, v in params.items() if v is not None}
        return parse(self.request("GET", path, params=query or None))

    def get_credentials(self) -> Credentials:
        """Your key pair; the first call provisions you (user, policies, home markers)."""
        return self._get("/credentials/", Credentials.from_json)

    def rotate_credentials(self) -> Credentials:
        """A new secret; the old one stops working (retried like a read, see the async twin)."""
        return Credentials.from_json(self.request("POST", "/credentials/rotate", idempotent=True))

    def get_workspace(self) -> Workspace:
        return self._get("/workspaces/me", Workspace.from_json)

    def get_groups(self) -> UserGroups:
        return self._get("/workspaces/me/groups", UserGroups.from_json)

    def get_policies(self) -> UserPolicies:
        return self._get("/workspaces/me/policies", UserPolicies.from_json)

    def get_accessible_paths(self) -> AccessiblePaths:
        return self._get("/workspaces/me/accessible-paths", AccessiblePaths.from_json)

    def get_group_workspace(self, group: str) -> GroupWorkspace:
        return self._get(f"/workspaces/me/groups/{segment(group)}", GroupWorkspace.from_json)

    def get_group_sql_warehouse_prefix(self, group: str) -> SqlWarehousePrefix:
        path = f"/workspaces/me/groups/{segment(group)}/sql-warehouse-prefix"
        return self._get(path, SqlWarehousePrefix.from_json)

    def get_sql_warehouse_prefix(self) -> SqlWarehousePrefix:
        return self._get("/workspaces/me/sql-warehouse-prefix", SqlWarehousePrefix.from_json)

    def get_namespace_prefix(self, tenant: str | None = None) -> NamespacePrefix:
        return self._get(
            "/workspaces/me/namespace-prefix", NamespacePrefix.from_json, tenant=tenant
        )
