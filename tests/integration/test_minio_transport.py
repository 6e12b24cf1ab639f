"""The MinIO adapter's own HTTP/1.1 transport (``objectstore/http1.py``) on the real MinIO:
keep-alive reuse and expiry, the pool's wait limit, a dead pooled connection, a refused one."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from minio_manager.objectstore.errors import StoreBusy, StoreUnavailable
from minio_manager.objectstore.http1 import Http1Transport
from minio_manager.objectstore.minio import MinioStore
from minio_manager.objectstore.port import StoreObject
from tests.support.proxy import TcpProxy
from tests.support.stack import store_var

pytestmark = pytest.mark.minio_only(reason="the transport belongs to the MinIO adapter")


class Opened:
    """A ``trace`` extension that counts the TCP connections opened for requests."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            self.count += 1


def endpoint(stack: dict[str, str]) -> str:
    return store_var(stack, "OBJECT_STORE_ENDPOINT").rstrip("/")


def admin_store(stack: dict[str, str], url: str | None = None, **options: Any) -> MinioStore:
    return MinioStore(
        url or endpoint(stack),
        store_var(stack, "OBJECT_STORE_ACCESS_KEY"),
        store_var(stack, "OBJECT_STORE_SECRET_KEY"),
        **options,
    )


@pytest.fixture
async def proxy(stack: dict[str, str]) -> AsyncIterator[TcpProxy]:
    host, port = endpoint(stack).split("://", 1)[1].split(":")
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    yield proxy
    await proxy.cut()


async def test_sequential_calls_share_one_kept_alive_connection(stack: dict[str, str]) -> None:
    store = admin_store(stack)
    opened = Opened()
    try:
        for _ in range(10):
            response = await store.http.get(
                endpoint(stack) + "/minio/health/live", extensions={"trace": opened}
            )
            assert response.status_code == 200
        assert opened.count == 1
        # Signed admin calls through the adapter, answers parsed: same connection still.
        assert (await store.get_policy("readonly")) is not None
        assert await store.get_policy("no-such-policy-here") is None
    finally:
        await store.close()


async def test_idle_connections_past_their_expiry_are_not_reused(stack: dict[str, str]) -> None:
    transport = Http1Transport(max_connections=4, keepalive_expiry=0.0)
    opened = Opened()
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(3):
            response = await client.get(
                endpoint(stack) + "/minio/health/live", extensions={"trace": opened}
            )
            assert response.status_code == 200
    assert opened.count == 3


async def test_a_wait_for_a_pooled_connection_that_runs_out_is_store_busy(
    stack: dict[str, str],
) -> None:
    store = admin_store(stack, max_connections=1, pool_wait_seconds=0.2)
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        await release.wait()
        yield b"x"

    # Holds the only connection while its body is not yet produced.
    held = asyncio.create_task(
        store.http.post(endpoint(stack) + "/minio/health/live", content=slow_body())
    )
    try:
        await asyncio.sleep(0.05)
        with pytest.raises(StoreBusy):
            await store.get_policy("readonly")
        release.set()
        await held
        assert await store.get_policy("readonly") is not None  # the slot came back
    finally:
        release.set()
        await asyncio.gather(held, return_exceptions=True)
        await store.close()


async def test_a_pooled_connection_cut_while_idle_is_replaced(
    stack: dict[str, str], proxy: TcpProxy
) -> None:
    """MinIO restarting looks like this to the pool: the next call still succeeds, on a new
    connection, and the adapter counts the event (an IAM write would prove IAM loaded)."""
    store = admin_store(stack, url=f"http://127.0.0.1:{proxy.port}")
    try:
        assert await store.get_policy("readonly") is not None
        events = store._pool_events
        await proxy.cut()
        await proxy.restore()
        assert await store.get_policy("readonly") is not None
        assert store._pool_events > events
    finally:
        await store.close()


async def test_a_refused_connection_is_store_unavailable(stack: dict[str, str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = admin_store(stack, url=f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(StoreUnavailable):
            await store.get_policy("readonly")
    finally:
        await store.close()


async def test_s3_bodies_and_listing_go_through_unchanged(stack: dict[str, str]) -> None:
    """A PUT body, an XML listing and a DeleteObjects answer, through the transport."""
    store = admin_store(stack)
    prefix = f"test-http1/{socket.gethostname()}-{id(store)}/"
    try:
        await store.ensure_buckets(["cdm-lake"])
        keys = [f"{prefix}k{n}" for n in range(5)]
        await store.put_objects([StoreObject("cdm-lake", k, b"v" * n) for n, k in enumerate(keys)])
        assert sorted(await store.list_keys("cdm-lake", prefix)) == keys
        assert await store.delete_prefix("cdm-lake", prefix) == 5
        assert await store.list_keys("cdm-lake", prefix) == []
    finally:
        await store.close()
