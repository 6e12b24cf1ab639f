"""The hot path against its ceiling, with ``wrk`` (prints figures; no pass/fail).

The ceiling is the least any ``GET /credentials/`` server can do: a bare FastAPI app on the
same uvicorn, same worker count, answering one indexed asyncpg SELECT of the same row with
``pgp_sym_decrypt`` — no authentication, no middleware, nothing else (``create_app`` below).
The service answers the same request with its real checks (token → KBase cache, roles, the
same SELECT). Both run in one go at 1, 16 and 64 connections; the ratio is service ÷ ceiling.
Then the service alone with 2 workers.

``wrk`` is the Debian package; it is installed with apt-get if missing.
``BENCH_WRK_SECONDS`` (default 10) per level.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "10"))
LEVELS = (1, 16, 64)


# -- the ceiling app (imported by uvicorn in its own process) --------------------------------
def create_app() -> Any:
    """Bare FastAPI: one asyncpg pool, one route, one SELECT of one fixed row."""
    import asyncpg
    from fastapi import FastAPI

    env = os.environ
    key, username = env["MMS_DB_ENCRYPTION_KEY"], env["CEILING_USERNAME"]
    pool: dict[str, asyncpg.Pool] = {}

    async def lifespan(_: FastAPI) -> Any:
        pool["db"] = await asyncpg.create_pool(
            host=env["MMS_DB_HOST"],
            port=int(env["MMS_DB_PORT"]),
            user=env["MMS_DB_USER"],
            password=env["MMS_DB_PASSWORD"],
            database=env["MMS_DB_NAME"],
            min_size=int(env.get("DB_POOL_SIZE", "20")),
            max_size=int(env.get("DB_POOL_SIZE", "20")),
        )
        yield
        await pool["db"].close()

    app = FastAPI(lifespan=lifespan)
    query = (
        "SELECT access_key, pgp_sym_decrypt(secret_key, $1) AS secret "
        "FROM user_credentials WHERE username = $2"
    )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/credentials/")
    async def credentials() -> dict[str, str]:
        row = await pool["db"].fetchrow(query, key, username)
        return {"username": username, "access_key": row["access_key"], "secret_key": row["secret"]}

    return app


# -- the benchmark ---------------------------------------------------------------------------
def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (apt-get)")
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False)
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    return shutil.which("wrk") or "wrk"


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str | None) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text or "")
    return float(found.group(1)) * _UNITS[found.group(2)] if found else float("nan")


def _field(pattern: str, out: str) -> str | None:
    found = re.search(pattern, out)
    return found.group(1) if found else None


def wrk(
    binary: str,
    url: str,
    token: str,
    connections: int,
    path: str = "/credentials/",
    seconds: int = SECONDS,
) -> tuple[float, float, float, int]:
    """(req/s, p50 ms, p99 ms, non-2xx) of one run."""
    out = subprocess.run(
        [
            binary,
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "60s",
            "-H",
            f"Authorization: Bearer {token}",
            url + path,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rate = float(_field(r"Requests/sec:\s+([\d.]+)", out) or "nan")
    p50 = _ms(_field(r"(?m)^\s+50%\s+(\S+)", out))
    p99 = _ms(_field(r"(?m)^\s+99%\s+(\S+)", out))
    if rate != rate or p50 != p50:
        print(f"unexpected wrk output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, p50, p99, int(bad.group(1)) if bad else 0


def main() -> None:
    import httpx
    from harness import _peak_rss_mib, running_service
    from tests.support.processes import service_process

    binary = ensure_wrk()
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"wrk {SECONDS}s per level, 1 uvicorn worker each, same machine as the stack")
    with running_service() as service:
        token = service.add_user("ceiling0001")
        httpx.get(
            service.url + "/credentials/", headers={"Authorization": f"Bearer {token}"}, timeout=60
        ).raise_for_status()
        env = {
            **os.environ,
            "MMS_DB_NAME": "mms_bench",
            "CEILING_USERNAME": "ceiling0001",
        }
        log = Path(tempfile.mkdtemp(prefix="mms-ceiling-")) / "ceiling.log"
        ceiling_pid: list[int] = []
        with service_process(
            env, log, on_start=ceiling_pid.append, app_factory="bench.ceiling:create_app"
        ) as ceiling_url:
            rows = []
            for c in LEVELS:
                ours = wrk(binary, service.url, token, c)
                bare = wrk(binary, ceiling_url, token, c)
                rows.append((c, ours, bare))
                print(
                    f"c={c:>2}  service {ours[0]:7.0f} req/s p50={ours[1]:6.1f}ms "
                    f"p99={ours[2]:6.1f}ms | ceiling {bare[0]:7.0f} req/s p50={bare[1]:6.1f}ms "
                    f"p99={bare[2]:6.1f}ms | ratio {ours[0] / bare[0]:.0%}"
                    + (
                        f"  NON-2XX service={ours[3]} ceiling={bare[3]}"
                        if ours[3] or bare[3]
                        else ""
                    )
                )
            print(
                f"peak RSS: service {service.peak_rss_mib():.0f} MiB, ceiling "
                f"{_peak_rss_mib(ceiling_pid[0]):.0f} MiB"
            )
    with running_service(workers=2) as service:
        token = service.add_user("ceiling0002")
        httpx.get(
            service.url + "/credentials/", headers={"Authorization": f"Bearer {token}"}, timeout=60
        ).raise_for_status()
        for c in LEVELS:
            rate, p50, p99, bad = wrk(binary, service.url, token, c)
            print(
                f"service, 2 workers, c={c:>2}: {rate:7.0f} req/s p50={p50:.1f}ms p99={p99:.1f}ms"
                + (f"  NON-2XX {bad}" if bad else "")
            )
        print(f"peak RSS (largest worker): {service.peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
