"""Response framing of the MinIO adapter's HTTP/1.1 transport, on bytes fed to a reader."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from minio_manager.objectstore.http1 import Http1Transport, _parse_head, _request_head


def reader_of(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def body(data: bytes, method: str = "GET") -> tuple[bytes, bool]:
    head, _, rest = data.partition(b"\r\n\r\n")
    _, status, _, headers = _parse_head(head + b"\r\n\r\n")
    fields = {k.lower(): v for k, v in headers}
    request = httpx.Request(method, "http://h/")
    return await Http1Transport._body(reader_of(rest), request, status, fields, 5.0)


async def test_content_length_body() -> None:
    assert await body(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA") == (b"abc", False)


async def test_chunked_body_with_extension_and_trailer() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;ext=1\r\nWiki\r\n6\r\npedia \r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    assert await body(raw) == (b"Wikipedia ", False)


async def test_body_until_close_and_no_body_cases() -> None:
    assert await body(b"HTTP/1.1 200 OK\r\n\r\nall of it") == (b"all of it", True)
    assert await body(b"HTTP/1.1 204 No Content\r\n\r\n") == (b"", False)
    assert await body(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", "HEAD") == (b"", False)


async def test_truncated_body_is_an_incomplete_read() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        await body(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")


@pytest.mark.parametrize(
    "head", [b"garbage\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n", b"SIP/2.0 200\r\n\r\n"]
)
def test_malformed_heads_are_protocol_errors(head: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        _parse_head(head)


def test_request_head_frames_the_body_by_length_only() -> None:
    request = httpx.Request(
        "PUT", "http://h:9000/p%20q?a=b", headers={"Transfer-Encoding": "chunked"}
    )
    head = _request_head(request, b"12345")
    assert head.startswith(b"PUT /p%20q?a=b HTTP/1.1\r\n")
    assert b"Content-Length: 5\r\n" in head
    assert b"chunked" not in head.lower()
    assert head.endswith(b"\r\n\r\n")
