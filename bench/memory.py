"""Where the service's memory goes, step by step (prints figures; no pass/fail).

Starts the service (one worker) and reads its ``VmRSS`` (now) and ``VmHWM`` (peak so far)
from ``/proc`` after each step:

- start-up, then one first login;
- ``BENCH_MEMORY_USERS`` first logins (default 40) at concurrency 16;
- ``GET /management/users``, ``GET /management/users/names``;
- ``POST /management/migrate/regenerate-policies``, ``GET /management/migrate/policy-drift``;
- four ``GET /management/users`` at once;
- last, ``GET /management/users/names?include_unmanaged=true`` (lists the store's users: on
  MinIO that answer is sealed with Argon2id, 64 MiB to open; not part of the goal's paths).

Goal (issue 12 item 4): the peak stays ≤ 150 MiB through every step.
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

from harness import Service, running_service

USERS = int(os.environ.get("BENCH_MEMORY_USERS", "40"))


def load() -> str:
    return "load " + "/".join(f"{x:.1f}" for x in os.getloadavg())


def _status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def report(service: Service, step: str) -> None:
    rss = _status_mib(service.pid, "VmRSS")
    print(f"{step:48s} peak {service.peak_rss_mib():6.1f}  now {rss:6.1f} MiB  ({load()})")


async def run(service: Service) -> None:
    tag = secrets.token_hex(3)
    admin = {"Authorization": f"Bearer {service.add_user(f'memadmin{tag}', admin=True)}"}
    tokens = [service.add_user(f"mem{tag}{i:04d}") for i in range(USERS)]
    async with httpx.AsyncClient(base_url=service.url, timeout=300) as client:
        report(service, "after start")
        (await client.get("/credentials/", headers=admin)).raise_for_status()
        report(service, "after 1 first login")
        gate = asyncio.Semaphore(16)

        async def login(token: str) -> None:
            async with gate:
                response = await client.get(
                    "/credentials/", headers={"Authorization": f"Bearer {token}"}
                )
                response.raise_for_status()

        await asyncio.gather(*(login(t) for t in tokens))
        report(service, f"after {USERS} first logins, c=16")
        for step, method, path in (
            ("GET /management/users", "GET", "/management/users?page_size=500"),
            ("GET /management/users/names", "GET", "/management/users/names"),
            ("regenerate-policies", "POST", "/management/migrate/regenerate-policies"),
            ("policy-drift", "GET", "/management/migrate/policy-drift"),
        ):
            (await client.request(method, path, headers=admin)).raise_for_status()
            report(service, f"after {step}")
        listings = [client.get("/management/users", headers=admin) for _ in range(4)]
        for response in await asyncio.gather(*listings):
            response.raise_for_status()
        report(service, "after 4 x GET /management/users at once")
        # Last: the one path left that opens MinIO's Argon2id-sealed list-users (on request).
        response = await client.get(
            "/management/users/names", params={"include_unmanaged": "true"}, headers=admin
        )
        response.raise_for_status()
        report(service, "after GET …/names?include_unmanaged=true")


def main() -> None:
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    with running_service() as service:
        asyncio.run(run(service))
        print(f"service peak RSS: {service.peak_rss_mib():.0f} MiB ({load()})")


if __name__ == "__main__":
    main()
