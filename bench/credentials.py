"""Benchmark of the hot path: GET /credentials/ (prints figures; no pass/fail).

- first-call provisioning latency for 100 new users (one at a time), and for a login storm of
  100 more new users at concurrency 16 (the 9 a.m. JupyterHub case);
- throughput and p50/p99 for already-provisioned users at concurrency 1, 16 and 64;
- peak RSS of the service process.

The client runs on the same machine as the service and the stack, so figures are a floor
for what the service can do, not a ceiling.
"""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import closed_loop, running_service, summary

NEW_USERS = int(os.environ.get("BENCH_NEW_USERS", "100"))
REQUESTS_PER_LEVEL = int(os.environ.get("BENCH_REQUESTS", "3000"))


async def run(base_url: str, tokens: list[str], storm: list[str]) -> None:
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120) as client:

        async def first_call(i: int) -> None:
            response = await client.get(
                "/credentials/", headers={"Authorization": f"Bearer {tokens[i]}"}
            )
            response.raise_for_status()

        seconds, latencies = await closed_loop(1, len(tokens), first_call)
        print(f"first-call provisioning, {len(tokens)} new users, sequential: {summary(latencies)}")
        print(f"  total {seconds:.1f}s")

        async def storm_call(i: int) -> None:
            response = await client.get(
                "/credentials/", headers={"Authorization": f"Bearer {storm[i]}"}
            )
            response.raise_for_status()

        seconds, latencies = await closed_loop(16, len(storm), storm_call)
        print(
            f"first-call provisioning, {len(storm)} new users, concurrency 16: "
            f"{len(storm) / seconds:.1f} users/s  {summary(latencies)}"
        )

        for concurrency in (1, 16, 64):

            async def known(i: int) -> None:
                token = tokens[i % len(tokens)]
                response = await client.get(
                    "/credentials/", headers={"Authorization": f"Bearer {token}"}
                )
                response.raise_for_status()

            seconds, latencies = await closed_loop(concurrency, REQUESTS_PER_LEVEL, known)
            print(
                f"known users, concurrency {concurrency:>2}: "
                f"{len(latencies) / seconds:7.0f} req/s  {summary(latencies)}"
            )


def main() -> None:
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    with running_service() as service:
        # Names new to the store on every run: the database is recreated per run but the
        # stack's MinIO is not, and a store user the service does not manage is refused (409).
        tag = secrets.token_hex(3)
        tokens = [service.add_user(f"bench{tag}{i:04d}") for i in range(NEW_USERS)]
        storm = [service.add_user(f"storm{tag}{i:04d}") for i in range(NEW_USERS)]
        asyncio.run(run(service.url, tokens, storm))
        print(f"service peak RSS: {service.peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
