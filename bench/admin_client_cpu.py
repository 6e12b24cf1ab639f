"""CPU seconds per MinIO admin GET by HTTP client (prints figures; no assertions).

Sends ``SAMPLES`` (default 3000) signed ``info-canned-policy`` GETs, ``CONCURRENCY`` (16) at a
time, to the MinIO of ``MINIO_ENDPOINT`` (``eval "$(scripts/stack.sh env)"``) through:
the adapter (``MinioStore.get_policy``: httpx + SigV4 + retries + parsing), signing alone,
a bare ``httpx.AsyncClient``, ``aiohttp`` and ``objectstore/http1.py`` (the adapter's own
keep-alive HTTP/1.1 client on asyncio streams). The figure is this process's CPU time
(user+sys) per request, which is what the service pays per admin call.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx

from minio_manager.objectstore.http1 import Http1Transport
from minio_manager.objectstore.minio import ADMIN_PREFIX, MinioStore
from minio_manager.objectstore.signing import canonical_query, encode_path, signed_headers

SAMPLES = int(os.environ.get("SAMPLES", "3000"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "16"))
ENDPOINT = os.environ["MINIO_ENDPOINT"].rstrip("/")
ACCESS = os.environ["MINIO_ROOT_USER"]
SECRET = os.environ["MINIO_ROOT_PASSWORD"]
PATH = ADMIN_PREFIX + "info-canned-policy"
QUERY = canonical_query({"name": "readonly"})
URL = f"{ENDPOINT}{encode_path(PATH)}?{QUERY}"


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def headers() -> dict[str, str]:
    return signed_headers(method="GET", url=URL, body=b"", access_key=ACCESS, secret_key=SECRET)


async def run(label: str, call: Callable[[], Awaitable[object]]) -> None:
    for _ in range(50):  # warm the pool
        await call()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with gate:
            await call()

    c0, t0 = cpu(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(SAMPLES)))
    c1, t1 = cpu(), time.perf_counter()
    print(
        f"{label:<28} cpu {1000 * (c1 - c0) / SAMPLES:6.3f} ms/req  "
        f"wall {1000 * (t1 - t0) / SAMPLES:6.3f} ms/req  ({SAMPLES} req, c={CONCURRENCY})"
    )


async def main() -> None:
    print(f"load: {os.getloadavg()}")
    store = MinioStore(ENDPOINT, ACCESS, SECRET)

    async def sign_only() -> None:
        headers()

    await run("signing only", sign_only)
    await run("adapter get_policy", lambda: store.get_policy("readonly"))
    await store.close()

    async with httpx.AsyncClient() as client:

        async def bare_httpx() -> None:
            response = await client.get(URL, headers=headers())
            response.json()

        await run("httpx (signed, bare)", bare_httpx)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:

        async def bare_aiohttp() -> None:
            async with session.get(URL, headers=headers()) as response:
                await response.read()

        await run("aiohttp (signed, bare)", bare_aiohttp)

    transport = Http1Transport(max_connections=64, keepalive_expiry=25.0)
    async with httpx.AsyncClient(transport=transport) as client:

        async def streams() -> None:
            response = await client.get(URL, headers=headers())
            response.json()

        await run("httpx + http1.py (signed)", streams)


if __name__ == "__main__":
    asyncio.run(main())
