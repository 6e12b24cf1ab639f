"""Shared benchmark plumbing: start the KBase stand-in and the service as real processes.

Benchmarks run against the stack of ``scripts/stack.sh`` in a database of their own
(``mms_bench``, recreated per run) and Redis database 14, so they never touch dev or test data.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.processes import service_process  # noqa: E402
from tests.support.stack import recreate_database, stack_env  # noqa: E402

BENCH_DB = "mms_bench"
# One client for seeding the stand-in: a new client per user built an SSL context each time
# (seconds per hundred users on a loaded machine).
_STUB_CLIENT = httpx.Client(timeout=10)


@dataclass
class Service:
    url: str
    kbase_url: str
    pid: int

    def peak_rss_mib(self) -> float:
        """Peak RSS of the service process (the largest worker when uvicorn runs several)."""
        peaks = [_peak_rss_mib(pid) for pid in (self.pid, *_children(self.pid))]
        return max(peaks, default=float("nan"))

    def add_user(self, name: str, *, admin: bool = False) -> str:
        token = f"bench-{name}-{secrets.token_hex(8)}"
        roles = ["BERDL_USER", "KBASE_ADMIN"] if admin else ["BERDL_USER"]
        body = {
            "user": name,
            "display": name,
            "email": f"{name}@bench.example",
            "customroles": roles,
            "tokens": [{"token": token, "expires_in_ms": 86_400_000}],
        }
        _STUB_CLIENT.post(self.kbase_url + "_stub/users", json=body).raise_for_status()
        return token


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(p) for p in task.read_text().split()]
    return found


def _peak_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


@contextmanager
def running_service(
    extra_env: dict[str, str] | None = None, *, workers: int = 1
) -> Iterator[Service]:
    with running_services(1, extra_env, workers=workers) as services:
        yield services[0]


@contextmanager
def running_services(
    count: int, extra_env: dict[str, str] | None = None, *, workers: int = 1
) -> Iterator[list[Service]]:
    """``count`` replicas sharing one bench database, Redis database and KBase stand-in."""
    env = {**os.environ, **stack_env()}
    asyncio.run(recreate_database(env, BENCH_DB))
    stub = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "kbase_stub.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert stub.stdout is not None
    kbase_url = stub.stdout.readline().strip().rsplit(" ", 1)[-1]
    redis_url = env["REDIS_URL"].rsplit("/", 1)[0] + "/14"
    env.update(
        MMS_DB_NAME=BENCH_DB,
        REDIS_URL=redis_url,
        KBASE_AUTH_URL=kbase_url,
        LOG_LEVEL="WARNING",
        **(extra_env or {}),
    )
    migrate(env)
    pids: list[int] = []
    log_dir = Path(tempfile.mkdtemp(prefix="mms-bench-"))
    try:
        with ExitStack() as stack:
            services = []
            for n in range(count):
                url = stack.enter_context(
                    service_process(
                        env, log_dir / f"service-{n}.log", on_start=pids.append, workers=workers
                    )
                )
                services.append(Service(url=url, kbase_url=kbase_url, pid=pids[-1]))
            yield services
    finally:
        stub.terminate()
        stub.wait(10)


def migrate(env: dict[str, str]) -> None:
    """Bring the fresh bench database to the newest schema before the service starts, as a
    deployment is on every start but the first after an upgrade: a service that finds the
    schema at head never imports Alembic (~9 MiB of RSS it would keep; db/migrations.py)."""
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        env={**env, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])},
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrating the bench database failed:\n{done.stderr}")


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def summary(samples_s: list[float]) -> str:
    ms = [s * 1000 for s in samples_s]
    return (
        f"n={len(ms)} p50={percentile(ms, 50):.1f}ms p99={percentile(ms, 99):.1f}ms "
        f"mean={statistics.fmean(ms):.1f}ms"
    )


async def closed_loop(
    concurrency: int, total: int, call: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    """Run ``total`` calls with ``concurrency`` workers; returns (seconds, latencies)."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            start = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies
