"""A real Prometheus server scrapes two worker processes and sums their counters.

The server is Debian's ``prometheus`` package (``scripts/prometheus.sh`` fetches and unpacks it
when missing); it listens on loopback with its config and data in a temporary directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import REPO, free_port

pytestmark = pytest.mark.integration

WORKERS = 2
REQUESTS = 40


def wait_for(probe: object, what: str, seconds: float = 90) -> object:
    """Poll ``probe`` until it returns something truthy (a readiness wait, not a timing check)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = probe()  # type: ignore[operator]
        except httpx.HTTPError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.5)


@pytest.fixture
def multiproc_dir(tmp_path: Path) -> Path:
    path = tmp_path / "prom-multiproc"
    path.mkdir()
    return path


@pytest.fixture
def workers(
    app: object, service_env: dict[str, str], tmp_path: Path, multiproc_dir: Path
) -> Iterator[str]:
    """The service with several uvicorn workers sharing PROMETHEUS_MULTIPROC_DIR."""
    port = free_port()
    env = {
        **os.environ,
        **service_env,
        "LOG_LEVEL": "INFO",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "minio_manager.main:create_app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS)]
    with (tmp_path / "service.log").open("wb") as log:
        proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: httpx.get(url + "/health", timeout=2).status_code == 200, "service")
            yield url
        finally:
            proc.terminate()
            proc.wait(30)


@pytest.fixture
def prometheus(workers: str, tmp_path: Path) -> Iterator[str]:
    binary = subprocess.run(
        [str(REPO / "scripts/prometheus.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    target = workers.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: mms\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    with (tmp_path / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(
                lambda: httpx.get(url + "/-/ready", timeout=2).status_code == 200, "prometheus"
            )
            yield url
        finally:
            proc.terminate()
            proc.wait(30)


def query(prometheus: str, expression: str) -> float | None:
    body = httpx.get(prometheus + "/api/v1/query", params={"query": expression}, timeout=5).json()
    assert body["status"] == "success", body
    results = body["data"]["result"]
    return float(results[0]["value"][1]) if results else None


def test_prometheus_scrapes_the_summed_counters_of_every_worker(
    workers: str, prometheus: str, multiproc_dir: Path
) -> None:
    # A new connection per request: on one kept-alive connection a single worker would answer
    # them all. Which worker accepts is the kernel's choice, so requests go on (bounded) until
    # every worker has written its own sample file, i.e. counted some of them.
    sent = 0
    with httpx.Client(base_url=workers, timeout=10, headers={"Connection": "close"}) as http:
        while sent < REQUESTS or (
            len(list(multiproc_dir.glob("counter_*.db"))) < WORKERS and sent < 10 * REQUESTS
        ):
            assert http.get("/health").status_code == 200
            sent += 1

    expression = 'sum(mms_http_requests_total{route="/health",status="200"})'
    # Each worker counts only its own requests; the total is only reached when /metrics sums
    # the multi-process files, whichever worker answers the scrape.
    seen = wait_for(
        lambda: (value := query(prometheus, expression)) is not None and value >= sent,
        "Prometheus to see every request",
    )
    assert seen
    assert query(prometheus, 'up{job="mms"}') == 1.0
    assert query(prometheus, "mms_reconciler_backlog") is not None  # a gauge across workers
    # Both workers wrote their own sample files, which /metrics summed.
    assert len(list(multiproc_dir.glob("counter_*.db"))) >= WORKERS
