"""Benchmark of POST /sharing/share against a target that already holds many shares.

Prints figures; no pass/fail. For each level (10, 100, 1000 shares held by one target user):

- seeding: the missing records are inserted straight into PostgreSQL, then one share call
  through the API renders all of them (so the policies really hold N grants);
- measured: ``BENCH_SHARE_SAMPLES`` share calls of a fresh path to that target, one at a time,
  each followed by an unmeasured unshare, so the target keeps holding N shares throughout.

A share places the new grant into one of the target's documents (stable placement, see
docs/decisions.md "Policy documents") and writes only that document, so latency should not
grow with the shares held beyond reading the target's records. The service runs as its own
process; client, service and stack share the machine, so the load average is printed with
the figures. User names get a per-run suffix: the bench database is recreated each run, but
MinIO keeps the users, and a store user unknown to the new database is not taken over.
"""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BENCH_DB, percentile, running_service, summary
from tests.support.stack import connect, stack_env
from tests.support.store import open_store

LEVELS = tuple(int(n) for n in os.environ.get("BENCH_SHARE_LEVELS", "10,100,1000").split(","))
SAMPLES = int(os.environ.get("BENCH_SHARE_SAMPLES", "40"))
BUCKET = "cdm-lake"


def home_key(user: str, rest: str) -> str:
    return f"users-general-warehouse/{user}/{rest}"


async def seed(owner: str, target: str, start: int, stop: int) -> None:
    """Insert records ``start..stop-1`` directly (no policy rendering)."""
    env = stack_env()
    conn = await connect(env, BENCH_DB)
    try:
        await conn.executemany(
            "INSERT INTO shares (owner, bucket, key, target_type, target_name, level, created_by)"
            " VALUES ($1, $2, $3, 'user', $4, 'write', $1)",
            [
                (owner, BUCKET, home_key(owner, f"seed/d{n:05d}"), target)
                for n in range(start, stop)
            ],
        )
    finally:
        await conn.close()


async def wait_enforced(target: str) -> None:
    """Until the reconciler has applied the target's policies (after a 202: the store was
    slower than the service's inline wait, e.g. SeaweedFS writing 27 policies)."""
    conn = await connect(stack_env(), BENCH_DB)
    try:
        while True:
            behind = await conn.fetchval(
                "SELECT count(*) FROM policy_outbox WHERE kind = 'user' AND name = $1"
                " AND applied_generation < generation",
                target,
            )
            if not behind:
                return
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def policy_count(target: str) -> int:
    store = open_store(stack_env())  # MinIO or an AWS-IAM-API store, as OBJECT_STORE says
    try:
        user = await store.get_user(target)
        return len(user.policies) if user else 0
    finally:
        await store.close()


async def run(base_url: str, owner: str, owner_token: str, target: str, target_token: str) -> None:
    headers = {"Authorization": f"Bearer {owner_token}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=300) as client:
        for token in (owner_token, target_token):
            response = await client.get(
                "/credentials/", headers={"Authorization": f"Bearer {token}"}
            )
            response.raise_for_status()

        pending = 0

        async def call(endpoint: str, body: dict[str, object]) -> float:
            """Seconds to the answer; a 202 (enforcement left to the reconciler) is counted."""
            nonlocal pending
            start = time.perf_counter()
            response = await client.post(endpoint, json=body, headers=headers)
            elapsed = time.perf_counter() - start
            if response.status_code == 202:
                pending += 1
            elif response.status_code != 200:
                raise RuntimeError(f"{endpoint} answered {response.status_code}: {response.text}")
            return elapsed

        def path(rest: str) -> str:
            return f"s3a://{BUCKET}/{home_key(owner, rest)}"

        held = 0
        medians: dict[int, float] = {}
        for level in LEVELS:
            # N-1 records straight into PostgreSQL, then the Nth through the API renders all N.
            await seed(owner, target, held, level - 1)
            pending = 0
            started = time.perf_counter()
            await call(
                "/sharing/share", {"path": path(f"seed/d{level - 1:05d}"), "with_users": [target]}
            )
            await wait_enforced(target)  # the render is done when the store has it all
            render = time.perf_counter() - started
            render_note = " (answered 202, then enforced by the reconciler)" if pending else ""
            pending = 0
            held = level
            documents = await policy_count(target)
            shares: list[float] = []
            unshares: list[float] = []
            for n in range(SAMPLES):
                probe = path(f"probe/l{level}/p{n:03d}")
                shares.append(await call("/sharing/share", {"path": probe, "with_users": [target]}))
                unshares.append(
                    await call("/sharing/unshare", {"path": probe, "from_users": [target]})
                )
            print(
                f"target holding {level:>5} shares ({documents} policies attached; seeded by"
                f" direct INSERT + one API share that rendered them in {render * 1000:.0f}ms"
                f"{render_note})"
            )
            if pending:
                print(f"  {pending} of {2 * SAMPLES} calls answered 202 (enforcement pending)")
            print(f"  share   {summary(shares)}")
            print(f"  unshare {summary(unshares)}  ({load()})")
            medians[level] = percentile(shares, 50)
        low, high = min(medians), max(medians)
        print(
            f"share p50 at {high} shares / at {low}: {medians[high] / medians[low]:.2f}x"
            " (goal: at most 2x)"
        )


def load() -> str:
    return "load average " + " ".join(f"{n:.2f}" for n in os.getloadavg())


def main() -> None:
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"levels {LEVELS}, {SAMPLES} sequential share (+unshare) calls per level; {load()}")
    with running_service() as service:
        run_id = secrets.token_hex(3)
        owner, target = f"benchowner{run_id}", f"benchtarget{run_id}"
        owner_token = service.add_user(owner)
        target_token = service.add_user(target)
        asyncio.run(run(service.url, owner, owner_token, target, target_token))
        print(f"service peak RSS: {service.peak_rss_mib():.0f} MiB; {load()}")


if __name__ == "__main__":
    main()
