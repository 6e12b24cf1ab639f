"""A cap on request bodies, enforced before anything reads or parses them.

FastAPI reads a JSON body in full before it resolves dependencies, so without a cap an
anonymous caller could make the service buffer megabytes before the 401. This ASGI middleware
sits outside the app: a ``Content-Length`` over the cap is answered 413 at once (the app never
runs), and a body sent without one (chunked) is counted as it streams in and cut off at the
cap. Every body the API accepts is a few KiB at most (500 names per list, 4 KiB text fields).
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minio_manager.errors import RequestTooLarge, error_body


class _BodyTooLarge(Exception):
    """Raised from ``receive`` once the streamed body passes the cap."""


def _too_large_messages(limit: int) -> tuple[Message, Message]:
    error = RequestTooLarge(f"request body larger than {limit} bytes")
    body = json.dumps(error_body(error)).encode()
    start: Message = {
        "type": "http.response.start",
        "status": error.status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            # The rest of the body is not read; the connection cannot be reused.
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


class BodySizeLimit:
    """Answer 413 (code 30030) to any HTTP request whose body exceeds ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, body = _too_large_messages(self.max_bytes)
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await send(start)
            await send(body)
            return

        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # Whatever the app made of the cut-off body (FastAPI turns a failed read into
                # 400), the caller hears 413; sent once, at the response's start.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await send(start)
                    await send(body)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            if not started:
                await send(start)
                await send(body)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
