"""Benchmark of the tenant directory: GET /tenants with 50 tenants (prints figures; no pass/fail).

- creates 50 tenants through the API (``POST /management/groups/{g}``) and gives each three
  members (one read-only) from a pool of 20 provisioned users;
- measures ``GET /tenants`` with ``wrk`` (req/s, p50, p99) at concurrency 1 and 16 with the
  membership cache on (warm: entries kept while the Redis change feed is heard), the first
  call after a member change (that tenant's groups refetched), then again with a second
  service started with the cache off (``GROUP_CACHE_SECONDS=0``, every request asks MinIO
  for every group: the cold cost);
- deletes the 50 tenants again (the object store is shared with tests and dev data).

``GET /tenants`` lists every group in the store, so the listing may hold more than the 50
tenants made here; the count is printed.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import secrets
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ceiling import ensure_wrk, wrk
from harness import Service, closed_loop, running_service, summary

WRK = ensure_wrk()

TENANTS = int(os.environ.get("BENCH_TENANTS", "50"))
USERS = int(os.environ.get("BENCH_USERS", "20"))
WRK_SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "10"))
CONCURRENCY = (1, 16)


def tenant_names(count: int) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = f"bt{secrets.token_hex(4)}"
        if not name.endswith("ro"):
            names.append(name)
    return names


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def setup(
    client: httpx.AsyncClient, service: Service, users: list[str]
) -> tuple[list[str], list[str]]:
    """Tokens for the users (provisioned) and an admin; the 50 tenants with members."""
    admin = service.add_user("benchadmin", admin=True)
    tokens = [service.add_user(u) for u in users]
    for token in tokens:
        (await client.get("/credentials/", headers=bearer(token))).raise_for_status()

    names = tenant_names(TENANTS)

    async def create(i: int) -> None:
        response = await client.post(f"/management/groups/{names[i]}", headers=bearer(admin))
        response.raise_for_status()

    seconds, latencies = await closed_loop(4, len(names), create)
    print(f"create {len(names)} tenants, concurrency 4: {summary(latencies)}  total {seconds:.1f}s")

    rng = random.Random(7)

    async def populate(i: int) -> None:
        for n, user in enumerate(rng.sample(users, 3)):
            permission = "read_only" if n == 2 else "read_write"
            response = await client.post(
                f"/tenants/{names[i]}/members/{user}",
                params={"permission": permission},
                headers=bearer(admin),
            )
            response.raise_for_status()

    seconds, latencies = await closed_loop(4, len(names), populate)
    print(f"add 3 members to each tenant: {summary(latencies)}  total {seconds:.1f}s")
    return tokens, names


async def measure(
    client: httpx.AsyncClient, service: Service, tokens: list[str], label: str
) -> None:
    """``wrk`` at each concurrency (a Python client would take the CPU it measures)."""
    listed = (await client.get("/tenants", headers=bearer(tokens[0]))).json()
    print(f"{label}: GET /tenants lists {len(listed)} tenants")
    for concurrency in CONCURRENCY:
        rate, p50, p99, bad = wrk(
            WRK, service.url, tokens[0], concurrency, path="/tenants", seconds=WRK_SECONDS
        )
        print(
            f"  concurrency {concurrency:>2}: {rate:7.1f} req/s  p50={p50:.1f}ms p99={p99:.1f}ms"
            f"{f'  NON-2XX {bad}' if bad else ''}  (load {load()})"
        )


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def after_change_elsewhere(
    client: httpx.AsyncClient, service: Service, tokens: list[str], names: list[str]
) -> None:
    """After a member change (dropped here, announced to other replicas) the next
    ``GET /tenants`` refetches that tenant's two groups and the names, nothing else."""
    samples: list[float] = []
    admin = service.add_user("benchadmin", admin=True)
    for i in range(20):
        user = f"bu{secrets.token_hex(4)}"
        token = service.add_user(user)
        (await client.get("/credentials/", headers=bearer(token))).raise_for_status()
        response = await client.post(
            f"/tenants/{names[i % len(names)]}/members/{user}", headers=bearer(admin)
        )
        response.raise_for_status()
        start = time.perf_counter()
        (await client.get("/tenants", headers=bearer(tokens[0]))).raise_for_status()
        samples.append(time.perf_counter() - start)
    print(f"  first call after a member change: {summary(samples)}")


def client_for(service: Service) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    return httpx.AsyncClient(base_url=service.url, limits=limits, timeout=300)


async def cached_run(service: Service, users: list[str]) -> list[str]:
    async with client_for(service) as client:
        tokens, names = await setup(client, service, users)
        await measure(client, service, tokens, "cache on, warm")
        await after_change_elsewhere(client, service, tokens, names)
        return names


async def uncached_run(service: Service, users: list[str], names: list[str]) -> None:
    async with client_for(service) as client:
        tokens = [service.add_user(u) for u in users]
        await measure(client, service, tokens, "cache off (GROUP_CACHE_SECONDS=0), cold")
        admin = service.add_user("benchadmin", admin=True)
        start = time.perf_counter()
        for name in names:
            response = await client.delete(f"/management/groups/{name}", headers=bearer(admin))
            response.raise_for_status()
        print(f"deleted {len(names)} tenants in {time.perf_counter() - start:.1f}s")


def main() -> None:
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    users = [f"bu{secrets.token_hex(4)}" for _ in range(USERS)]
    with running_service() as service:
        names = asyncio.run(cached_run(service, users))
        print(f"service peak RSS: {service.peak_rss_mib():.0f} MiB")
    with running_service({"GROUP_CACHE_SECONDS": "0"}) as service:
        asyncio.run(uncached_run(service, users, names))


if __name__ == "__main__":
    main()
