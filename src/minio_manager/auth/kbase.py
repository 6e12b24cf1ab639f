"""KBase auth2 client with a per-process cache of successful lookups.

Protocol facts (see docs/kbase-auth.md): the raw token goes in ``Authorization`` with no
scheme; only appcode 10020 (and a disabled account) means "this token is bad"; a 5xx, a
timeout, a refused connection or a non-JSON answer means the service is unavailable, which
we report as 503 rather than blaming the caller's token. A wait for one of our own pooled
connections that runs out is ``ServiceBusy`` (429): KBase is up, we are queueing.

Cache: keyed by SHA-256 of the token (never the raw token), kept for
``min(cachefor, expires - now)`` (both milliseconds), failures never cached. Concurrent misses
for the same token share one lookup, so a login storm costs one round trip per user.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from minio_manager.admission import FairGate
from minio_manager.errors import AuthServiceUnavailable, InvalidToken, ServiceBusy
from minio_manager.observability import metrics

log = logging.getLogger(__name__)

INVALID_TOKEN_APPCODE = 10020
ACCOUNT_DISABLED_APPCODE = 20010
DEFAULT_CACHEFOR_MS = 300_000
DISPLAY_NAME_TTL_SECONDS = 300.0


@dataclass(frozen=True)
class KBaseUser:
    username: str
    custom_roles: frozenset[str] = field(default_factory=frozenset)
    display_name: str | None = None
    email: str | None = None


def token_fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class KBaseAuthClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float = 10.0,
        max_entries: int = 10_000,
        max_connections: int = 64,
        pool_wait_seconds: float = 30.0,
        lookup_queue_seconds: float = 300.0,
        on_lookup: Callable[[KBaseUser], Awaitable[None]] | None = None,
    ) -> None:
        self._base = base_url.rstrip("/") + "/"
        self._client = httpx.AsyncClient(
            # The pool wait is separate from the request timeout: a storm of cache misses
            # queues for a connection (busy) without that queueing counting as KBase's delay.
            timeout=httpx.Timeout(timeout_seconds, pool=pool_wait_seconds),
            headers={"Accept": "application/json"},
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )
        # A lookup is two requests at once: at most half the pool's connections' worth of
        # lookups run, the rest queue in arrival order (a storm waits its turn instead of
        # timing out in the connection pool or opening hundreds of connections at once).
        self._lookups = FairGate(
            max(1, max_connections // 2), wait_seconds=lookup_queue_seconds, what="auth lookups"
        )
        self._cache: OrderedDict[str, tuple[KBaseUser, float]] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[KBaseUser]] = {}
        self._max_entries = max_entries
        self._names: dict[str, tuple[str | None, float]] = {}
        self.on_lookup = on_lookup
        self.lookups = 0  # round trips to /me, for tests and benchmarks

    @property
    def http(self) -> httpx.AsyncClient:
        """The pooled client (observability attaches its timing transport to it)."""
        return self._client

    async def close(self) -> None:
        await self._client.aclose()

    # -- transport --------------------------------------------------------------------------
    async def _get(self, path: str, token: str | None, params: dict[str, str] | None = None) -> Any:
        headers = {"Authorization": token} if token is not None else {}
        try:
            response = await self._client.get(self._base + path, headers=headers, params=params)
        except httpx.PoolTimeout:
            # Our own connection pool stayed full: KBase is answering the calls ahead of us.
            log.warning("KBase auth: no pooled connection came free in time")
            raise ServiceBusy("too many auth lookups in progress; try again shortly") from None
        except httpx.HTTPError as exc:
            log.warning("KBase auth unreachable: %s", type(exc).__name__)
            raise AuthServiceUnavailable("the KBase auth service is unreachable") from None
        try:
            body = response.json()
        except ValueError:
            log.warning("KBase auth answered non-JSON (HTTP %s)", response.status_code)
            raise AuthServiceUnavailable("the KBase auth service is unavailable") from None
        if response.status_code < 300:
            return body
        error = body.get("error") if isinstance(body, dict) else None
        appcode = error.get("appcode") if isinstance(error, dict) else None
        if appcode == INVALID_TOKEN_APPCODE:
            raise InvalidToken("invalid or expired token")
        if appcode == ACCOUNT_DISABLED_APPCODE:
            raise InvalidToken("the account is disabled")
        log.warning("KBase auth error HTTP %s appcode %s", response.status_code, appcode)
        raise AuthServiceUnavailable(f"the KBase auth service failed (HTTP {response.status_code})")

    async def check_service(self) -> None:
        """Start-up check: the URL must point at a KBase auth service."""
        info = await self._get("", None)
        if not isinstance(info, dict) or info.get("servicename") != "Authentication Service":
            raise AuthServiceUnavailable("KBASE_AUTH_URL is not a KBase auth service")

    # -- token validation ------------------------------------------------------------------------
    async def user_for_token(self, token: str) -> KBaseUser:
        key = token_fingerprint(token)
        cached = self._cache.get(key)
        if cached is not None:
            user, valid_until = cached
            if time.monotonic() < valid_until:
                self._cache.move_to_end(key)
                metrics.cache_lookup("auth", hit=True)
                return user
            self._cache.pop(key, None)
        metrics.cache_lookup("auth", hit=False)
        task = self._inflight.get(key)
        if task is None:
            # A task of its own: a caller that disconnects (is cancelled) does not cancel the
            # lookup that other callers with the same token are waiting for.
            task = asyncio.create_task(self._lookup(key, token))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._lookup_done(key, done))
        return await asyncio.shield(task)

    def _lookup_done(self, key: str, task: asyncio.Task[KBaseUser]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so an unawaited failure is not reported twice

    async def _lookup(self, key: str, token: str) -> KBaseUser:
        async with self._lookups.slot():
            self.lookups += 1
            token_info, me = await asyncio.gather(
                self._get("api/V2/token", token), self._get("api/V2/me", token)
            )
        if not isinstance(me, dict) or not isinstance(token_info, dict) or not me.get("user"):
            log.warning("KBase auth answered an unexpected body shape")
            raise AuthServiceUnavailable("the KBase auth service answered unexpectedly")
        user = KBaseUser(
            username=str(me["user"]),
            custom_roles=frozenset(me.get("customroles") or ()),
            display_name=me.get("display"),
            email=me.get("email"),
        )
        now_ms = time.time() * 1000
        cachefor_ms = float(token_info.get("cachefor") or DEFAULT_CACHEFOR_MS)
        expires_ms = token_info.get("expires")
        ttl_ms = cachefor_ms if expires_ms is None else min(cachefor_ms, float(expires_ms) - now_ms)
        if ttl_ms > 0:
            self._cache[key] = (user, time.monotonic() + ttl_ms / 1000)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        if user.display_name:
            self._names[user.username] = (user.display_name, time.monotonic())
        if self.on_lookup is not None:
            await self.on_lookup(user)
        return user

    def forget(self, token: str) -> None:
        self._cache.pop(token_fingerprint(token), None)

    # -- display names ----------------------------------------------------------------------------
    async def display_names(self, token: str, usernames: Sequence[str]) -> dict[str, str | None]:
        """Display names for member lists, cached for five minutes per name."""
        now = time.monotonic()
        result: dict[str, str | None] = {}
        missing: list[str] = []
        for name in dict.fromkeys(usernames):
            hit = self._names.get(name)
            if hit is not None and now - hit[1] < DISPLAY_NAME_TTL_SECONDS:
                result[name] = hit[0]
            else:
                missing.append(name)
        for start in range(0, len(missing), 100):
            batch = missing[start : start + 100]
            found = await self._get("api/V2/users/", token, params={"list": ",".join(batch)})
            for name in batch:
                display = found.get(name) if isinstance(found, dict) else None
                self._names[name] = (display, now)
                result[name] = display
        return result
