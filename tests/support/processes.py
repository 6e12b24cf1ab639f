"""Extra service replicas as real processes, for tests that need two of them at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def service_process(
    env: dict[str, str],
    log_path: Path,
    on_start: Callable[[int], None] | None = None,
    port: int | None = None,
    *,
    workers: int = 1,
    app_factory: str = "minio_manager.main:create_app",
) -> Iterator[str]:
    """Run ``uvicorn`` on ``port`` (default: a free one) with ``env``; yield its base URL once
    healthy.

    ``on_start`` receives the process id (benchmarks read its peak memory; the chaos benchmark
    SIGKILLs it and starts a replica again on the same ``port``, behind the same proxy); with
    ``workers`` > 1 that is uvicorn's supervisor, whose children are the workers.
    ``app_factory`` lets a benchmark serve another app the same way (it needs ``/health``).
    """
    port = port or free_port()
    full_env = {
        **os.environ,
        **env,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
    }
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                app_factory,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                *(["--workers", str(workers)] if workers > 1 else []),
            ],
            env=full_env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        if on_start is not None:
            on_start(proc.pid)
        try:
            deadline = time.monotonic() + 180  # a loaded CI machine starts slowly
            while True:
                try:
                    if httpx.get(url + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"service on port {port} did not start; see {log_path}")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextmanager
def service_processes(env: dict[str, str], log_dir: Path, count: int) -> Iterator[list[str]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(service_process(env, log_dir / f"service-{n}.log"))
            for n in range(count)
        ]
