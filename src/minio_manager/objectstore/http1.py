"""A keep-alive HTTP/1.1 transport for httpx on asyncio streams (the MinIO adapter's wire).

Why: through httpcore, one admin GET to MinIO cost the service ~1.3 ms of CPU (quiet VM; the
client layer of httpx itself ~0.1 ms of it), and ``regenerate-policies`` makes three such
calls per user. This transport does only what the adapter needs — HTTP/1.1 with
``Content-Length`` or chunked bodies, a bounded pool of keep-alive connections, TLS when the
URL says https — and raises httpx's own exceptions, so ``httpx.AsyncClient`` (event hooks,
the timing transport of ``observability/instrument.py``, timeouts) and the adapter's retry and
error rules stay as they are.

Behaviour kept from httpcore, which the adapter relies on:
- at most ``max_connections`` requests in flight; a request that waits longer than the
  ``pool`` timeout for one raises ``httpx.PoolTimeout``;
- idle connections are reused for ``keepalive_expiry`` seconds, then closed; one the peer has
  closed meanwhile is dropped and replaced;
- opening a TCP connection reports ``connection.connect_tcp.complete`` to the request's
  ``trace`` extension (the adapter's IAM-load proof counts these);
- connect/read/write timeouts raise ``ConnectTimeout``/``ReadTimeout``/``WriteTimeout``; a
  refused connection ``ConnectError``; a reset ``ReadError``/``WriteError``; a connection
  closed before the response, or a malformed response, ``RemoteProtocolError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

MAX_HEADER_BYTES = 64 * 1024
NO_BODY_STATUS = frozenset({204, 304})
Trace = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    origin: tuple[str, str, int]
    idle_until: float = field(default=0.0)

    def usable(self, now: float) -> bool:
        return (
            now < self.idle_until
            and not self.writer.is_closing()
            and not self.reader.at_eof()
            and not self.reader._buffer  # type: ignore[attr-defined]  # unread bytes: unusable
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


def _timeouts(request: httpx.Request) -> dict[str, float | None]:
    value = request.extensions.get("timeout") or {}
    return {k: value.get(k) for k in ("connect", "read", "write", "pool")}


async def _within(seconds: float | None, call: Awaitable[Any]) -> Any:
    """``call`` bounded by ``seconds`` (``asyncio.timeout``: no task per call, unlike
    ``wait_for`` on Python 3.11)."""
    async with asyncio.timeout(seconds):
        return await call


def _request_head(request: httpx.Request, body: bytes) -> bytes:
    """The request line and headers; the body (read whole) always goes with its length."""
    lines = [request.method.encode() + b" " + request.url.raw_path + b" HTTP/1.1"]
    for name, value in request.headers.raw:
        if name.lower() not in {b"content-length", b"transfer-encoding"}:
            lines.append(name + b": " + value)
    if body or request.method in {"PUT", "POST", "PATCH"}:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _parse_head(head: bytes) -> tuple[bytes, int, bytes, list[tuple[bytes, bytes]]]:
    try:
        status_line, *header_lines = head[:-4].split(b"\r\n")
        version, code, *reason = status_line.split(b" ", 2)
        status = int(code)
        headers = []
        for line in header_lines:
            name, _, value = line.partition(b":")
            headers.append((name.strip(), value.strip()))
    except ValueError:
        raise httpx.RemoteProtocolError("malformed response head") from None
    if not version.startswith(b"HTTP/1.") or not 100 <= status <= 599:
        raise httpx.RemoteProtocolError("malformed status line")
    return version, status, reason[0] if reason else b"", headers


class Http1Transport(httpx.AsyncBaseTransport):
    """See the module doc."""

    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_expiry: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._keepalive = keepalive_expiry
        self._idle: list[_Connection] = []
        self._ssl = ssl_context
        self._closed = False

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = _timeouts(request)
        try:
            await _within(timeouts["pool"], self._slots.acquire())
        except TimeoutError:
            raise httpx.PoolTimeout("no pooled connection came free", request=request) from None
        try:
            return await self._exchange(request, timeouts)
        finally:
            self._slots.release()

    async def _exchange(
        self, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> httpx.Response:
        body = await request.aread()
        connection = await self._connection(request, timeouts)
        reusable = False
        try:
            await self._write(connection, _request_head(request, body) + body, request, timeouts)
            response, reusable = await self._read(connection, request, timeouts)
            return response
        finally:
            if reusable and not self._closed:
                connection.idle_until = time.monotonic() + self._keepalive
                self._idle.append(connection)
            else:
                connection.close()

    async def _connection(
        self, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> _Connection:
        url = request.url
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()  # the most recently used: least likely to be stale
            if connection.origin == origin and connection.usable(now):
                return connection
            connection.close()
        tls = None
        if origin[0] == "https":
            if self._ssl is None:  # built once: loading the CA bundle is not cheap
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        try:
            reader, writer = await _within(
                timeouts["connect"],
                asyncio.open_connection(origin[1], origin[2], ssl=tls, limit=MAX_HEADER_BYTES),
            )
        except TimeoutError:
            raise httpx.ConnectTimeout("timed out connecting", request=request) from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from None
        trace: Trace | None = request.extensions.get("trace")
        if trace is not None:
            await trace("connection.connect_tcp.complete", {"return_value": None})
        return _Connection(reader, writer, origin)

    @staticmethod
    async def _write(
        connection: _Connection,
        data: bytes,
        request: httpx.Request,
        timeouts: dict[str, float | None],
    ) -> None:
        try:
            connection.writer.write(data)
            await _within(timeouts["write"], connection.writer.drain())
        except TimeoutError:
            raise httpx.WriteTimeout("timed out writing", request=request) from None
        except OSError as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from None

    async def _read(
        self, connection: _Connection, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> tuple[httpx.Response, bool]:
        reader, wait = connection.reader, timeouts["read"]
        try:
            while True:
                head = await _within(wait, reader.readuntil(b"\r\n\r\n"))
                version, status, reason, headers = _parse_head(head)
                if status >= 200 or status == 101:
                    break  # 1xx (e.g. 100 Continue) precede the real answer
            fields = {name.lower(): value for name, value in headers}
            content, until_close = await self._body(reader, request, status, fields, wait)
        except asyncio.IncompleteReadError as exc:
            raise httpx.RemoteProtocolError(
                "server disconnected without sending a complete response"
                if exc.partial or reader.at_eof()
                else "server disconnected",
                request=request,
            ) from None
        except asyncio.LimitOverrunError:
            raise httpx.RemoteProtocolError("response head too large", request=request) from None
        except TimeoutError:
            raise httpx.ReadTimeout("timed out reading", request=request) from None
        except OSError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from None
        close = fields.get(b"connection", b"").lower() == b"close" or version == b"HTTP/1.0"
        response = httpx.Response(
            status,
            headers=headers,
            stream=httpx.ByteStream(content),
            request=request,
            extensions={"http_version": version, "reason_phrase": reason},
        )
        return response, not (close or until_close)

    @staticmethod
    async def _body(
        reader: asyncio.StreamReader,
        request: httpx.Request,
        status: int,
        fields: dict[bytes, bytes],
        wait: float | None,
    ) -> tuple[bytes, bool]:
        """The body, and whether it ran to the end of the connection."""
        if request.method == "HEAD" or status in NO_BODY_STATUS or status < 200:
            return b"", False
        if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
            parts: list[bytes] = []
            while True:
                size_line = await _within(wait, reader.readuntil(b"\r\n"))
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise httpx.RemoteProtocolError("malformed chunk size") from None
                if size == 0:
                    while (await _within(wait, reader.readuntil(b"\r\n"))) != b"\r\n":
                        pass  # trailers
                    return b"".join(parts), False
                parts.append(await _within(wait, reader.readexactly(size)))
                await _within(wait, reader.readexactly(2))
        length = fields.get(b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                raise httpx.RemoteProtocolError("malformed Content-Length") from None
            return await _within(wait, reader.readexactly(size)), False
        return await _within(wait, reader.read()), True
