"""Drivers for the real programs of the end-to-end tests: JupyterHub and a Spark job.

Each program runs from the venvs ``scripts/e2e_tools.sh`` caches under
``~/.cache/mms/e2e`` (``MMS_E2E_CACHE``), in a process group of its own, bound to 127.0.0.1,
and every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tests.support.processes import free_port

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(
    os.environ.get("MMS_E2E_CACHE")
    or Path(os.environ.get("MMS_CACHE_DIR") or Path.home() / ".cache" / "mms") / "e2e"
)
JH_VENV = CACHE / "jh"
CHP = CACHE / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
SPARK_VENV = CACHE / "spark"
SPARK_JARS_FILE = CACHE / "spark-jars.txt"
HUB_CONFIG = REPO / "e2e" / "jupyterhub_config.py"
SPARK_JOB = REPO / "e2e" / "spark_job.py"


def missing_tools() -> list[str]:
    wanted = [JH_VENV / "bin" / "jupyterhub", CHP, SPARK_VENV / "bin" / "python", SPARK_JARS_FILE]
    return [str(p) for p in wanted if not p.exists()]


def wait_until(what: str, check: Any, timeout: float, interval: float = 0.3) -> Any:
    """Poll ``check()`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s")
        time.sleep(interval)


def stop_group(proc: subprocess.Popen[bytes], grace: float = 20) -> None:
    """SIGTERM the process (it stops its children), then SIGKILL whatever is left of its group."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group we created with start_new_session


def read_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


def command_lines() -> Iterator[tuple[int, str]]:
    """Every process's command line, as the kernel shows it to any user of the machine."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            yield int(entry.name), raw.replace(b"\0", b" ").decode(errors="replace")


def secrets_on_command_lines(secrets: list[str]) -> list[str]:
    return [f"pid {pid}" for pid, line in command_lines() for s in secrets if s and s in line]


@dataclass
class Hub:
    url: str
    token: str
    log: Path
    proc: subprocess.Popen[bytes]

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.url}/hub/api{path}",
            headers={"Authorization": f"token {self.token}"},
            timeout=120,
            **kwargs,
        )

    def login(self, username: str, kbase_token: str) -> httpx.Client:
        """Log in through the login form, as a browser does; the session keeps the cookies."""
        session = httpx.Client(base_url=self.url, timeout=60, follow_redirects=False)
        page = session.get("/hub/login")
        page.raise_for_status()
        match = re.search(r'name="_xsrf"\s+value="([^"]+)"', page.text)
        form = {"username": username, "password": kbase_token}
        if match:
            form["_xsrf"] = match.group(1)
        answer = session.post("/hub/login", data=form)
        if answer.status_code != 302:
            raise AssertionError(f"login of {username} failed: {answer.status_code}")
        return session

    def start_server(self, name: str) -> httpx.Response:
        """POST …/server; on 202 (still starting) wait until the hub reports it ready."""
        answer = self.api("POST", f"/users/{name}/server")
        if answer.status_code == 202:
            wait_until(f"server of {name}", lambda: self.server(name).get("ready"), 90, 0.5)
        return answer

    def server(self, name: str) -> dict[str, Any]:
        body = self.api("GET", f"/users/{name}").json()
        servers: dict[str, Any] = body.get("servers") or {}
        return servers.get("") or {}

    def server_pid(self, name: str) -> int:
        return int(self.server(name)["state"]["pid"])

    def stop_server(self, name: str) -> None:
        answer = self.api("DELETE", f"/users/{name}/server")
        assert answer.status_code in (202, 204), answer.text


@contextmanager
def running_hub(workdir: Path, env: dict[str, str]) -> Iterator[Hub]:
    """JupyterHub + configurable-http-proxy with ``e2e/jupyterhub_config.py``."""
    # The hook ships in the client package: install it (from this checkout) as a user would.
    subprocess.run(
        [
            str(JH_VENV / "bin" / "pip"),
            "install",
            "--quiet",
            "--force-reinstall",
            "--no-deps",
            str(REPO / "clients" / "python"),
        ],
        check=True,
        capture_output=True,
    )
    token = os.urandom(24).hex()
    port = free_port()
    full_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "JUPYTERHUB_CRYPT_KEY": os.urandom(32).hex(),
        "MMS_E2E_HUB_PORT": str(port),
        "MMS_E2E_HUB_API_PORT": str(free_port()),
        "MMS_E2E_PROXY_API_PORT": str(free_port()),
        "MMS_E2E_HUB_API_TOKEN": token,
        "MMS_E2E_CHP": str(CHP),
        "MMS_E2E_SINGLEUSER": str(JH_VENV / "bin" / "jupyterhub-singleuser"),
        "MMS_E2E_SPARK_JARS": SPARK_JARS_FILE.read_text().strip(),
        **env,
    }
    log = workdir / "jupyterhub.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(JH_VENV / "bin" / "python"),
                str(JH_VENV / "bin" / "jupyterhub"),
                "-f",
                str(HUB_CONFIG),
            ],
            cwd=workdir,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    hub = Hub(f"http://127.0.0.1:{port}", token, log, proc)
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterHub exited ({proc.returncode}); see {log}")
            try:
                return hub.api("GET", "/").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until("JupyterHub", up, 90, 0.5)
        yield hub
    finally:
        stop_group(proc)


@dataclass
class SparkRun:
    results: list[dict[str, Any]]
    seconds: float
    secrets_seen_on_command_lines: list[str] = field(default_factory=list)
    output_tail: str = ""

    def step(self, index: int) -> dict[str, Any]:
        assert index < len(self.results), f"step {index} did not report:\n{self.output_tail}"
        return self.results[index]


def run_spark(
    steps: list[dict[str, Any]], hook_env: dict[str, str], workdir: Path, watch: list[str]
) -> SparkRun:
    """One Spark session in the cached pyspark venv with the hook's variables and a bare base.

    While it runs, every process's command line is checked for the strings in ``watch``
    (secrets): spark-submit's JVM is where a leak through ``PYSPARK_SUBMIT_ARGS`` would show.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(workdir), "LANG": "C.UTF-8", **hook_env}
    if "JAVA_HOME" in os.environ:
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    log = workdir / "spark.log"
    report = workdir / "results.jsonl"
    started = time.monotonic()
    seen: set[str] = set()
    with log.open("wb") as err, report.open("wb") as out:
        proc = subprocess.Popen(
            [str(SPARK_VENV / "bin" / "python"), str(SPARK_JOB), json.dumps(steps)],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            deadline = started + 600
            while proc.poll() is None:
                seen.update(secrets_on_command_lines(watch))
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Spark job ran past 600 s; see {log}")
                time.sleep(0.5)
        finally:
            stop_group(proc, grace=10)
    results = [
        json.loads(line.split("MMS-E2E ", 1)[1])
        for line in report.read_text(errors="replace").splitlines()
        if line.startswith("MMS-E2E ")
    ]
    tail = log.read_text(errors="replace")[-3000:]
    return SparkRun(results, time.monotonic() - started, sorted(seen), tail)
