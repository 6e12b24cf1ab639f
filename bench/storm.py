"""Login storm: N brand-new users call ``GET /credentials/`` at the same instant.

The 9 a.m. JupyterHub case (issue 12): every user's first call arrives together, on one
fresh replica and on three. Prints how many answered 200 (and which errors otherwise),
p50/p99 latency, users/s over the whole storm, each replica's peak RSS, and how many of the
issued pairs actually work at S3 (every pair writes and reads back an object in its home).
No pass/fail: figures only.

``BENCH_STORM_USERS`` (default 500) and ``BENCH_STORM_REPLICAS`` (default ``1,3``).
"""

from __future__ import annotations

import asyncio
import collections
import os
import platform
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO, running_services, summary

sys.path.insert(0, str(REPO / "src"))

from tests.support.s3 import failing_pairs

USERS = int(os.environ.get("BENCH_STORM_USERS", "500"))
REPLICAS = [int(n) for n in os.environ.get("BENCH_STORM_REPLICAS", "1,3").split(",")]


async def storm(urls: list[str], tokens: list[str]) -> dict[str, tuple[str, str]]:
    """Fire every first call at once; print the outcome; return user → (access, secret)."""
    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=len(tokens))
    clients = [httpx.AsyncClient(base_url=u, limits=limits, timeout=300) for u in urls]
    outcomes: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    pairs: dict[str, tuple[str, str]] = {}
    start_line = asyncio.Event()

    async def login(i: int) -> None:
        client = clients[i % len(clients)]
        await start_line.wait()
        began = time.perf_counter()
        try:
            response = await client.get(
                "/credentials/", headers={"Authorization": f"Bearer {tokens[i]}"}
            )
        except httpx.HTTPError as exc:
            outcomes[f"client {type(exc).__name__}"] += 1
            return
        latencies.append(time.perf_counter() - began)
        if response.status_code == 200:
            body = response.json()
            pairs[body["username"]] = (body["access_key"], body["secret_key"])
            outcomes["200"] += 1
        else:
            code = response.json().get("error") if response.content else None
            outcomes[f"{response.status_code} ({code})"] += 1

    try:
        tasks = [asyncio.create_task(login(i)) for i in range(len(tokens))]
        await asyncio.sleep(0.2)  # every request is parked at the start line
        began = time.perf_counter()
        start_line.set()
        await asyncio.gather(*tasks)
        seconds = time.perf_counter() - began
    finally:
        for client in clients:
            await client.aclose()
    print(f"  answers: {dict(sorted(outcomes.items()))}")
    print(f"  {len(tokens) / seconds:.1f} users/s over {seconds:.1f}s  {summary(latencies)}")
    return pairs


def run(replicas: int) -> None:
    print(f"== {USERS} simultaneous first logins, {replicas} replica(s)")
    with running_services(replicas) as services:
        tag = f"s{replicas}x{os.getpid() % 10000}"
        tokens = [services[0].add_user(f"{tag}u{i:04d}") for i in range(USERS)]
        pairs = asyncio.run(storm([s.url for s in services], tokens))
        rss = ", ".join(f"{s.peak_rss_mib():.0f}" for s in services)
        print(f"  service peak RSS (MiB, per replica): {rss}")
    endpoint = os.environ["MINIO_ENDPOINT"]
    homes = {
        user: (access, secret, f"users-general-warehouse/{user}")
        for user, (access, secret) in pairs.items()
    }
    failed = asyncio.run(failing_pairs(endpoint, "cdm-lake", homes))
    print(f"  pairs checked at S3 (write + read back in home): {len(homes)}, failing {len(failed)}")


def main() -> None:
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    for replicas in REPLICAS:
        run(replicas)


if __name__ == "__main__":
    main()
