"""Chaos benchmark: records always win while MinIO, PostgreSQL, Redis and a replica die.

Three service replicas (real processes) run behind nginx (round-robin, loopback only) on a
private stack (``tests/support/private_stack.py``), so the shared stack is never touched. 64
async clients drive a realistic mix (first logins of new KBase users, cached logins, shares
and unshares between users, tenant member moves, rotations) while MinIO, PostgreSQL, Redis
and one replica are each SIGKILLed and restarted in turn.

After each dependency returns we measure how long until the outbox is empty (/health
``outbox.pending`` = 0) and a share made during the outage is enforced at S3. At the end,
once the outbox has drained, every recorded grant and tenant membership is checked with the
grantee's issued keys (lost grants, revoked-but-readable), and every user's cached pair
(GET /credentials/) is tried at S3 (stale credentials).

    CHAOS_SECONDS=120 uv run python bench/chaos.py     # make chaos-short; make chaos = 600 s

Every loop is bounded by the duration or a deadline; all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.convergence import (  # noqa: E402
    can_read,
    outbox_pending,
    pair_works,
    path_readers,
    tenant_levels,
)
from tests.support.private_stack import PrivateStack, free_port, port_open  # noqa: E402
from tests.support.processes import service_process  # noqa: E402
from tests.support.s3 import S3User  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from harness import _peak_rss_mib  # noqa: E402

BUCKET = "cdm-lake"
CLIENTS = 64
REPLICAS = 3
OWNERS = 16
PATHS_PER_OWNER = 2
INITIAL_USERS = 48
TENANTS = 4
OUTAGE_SECONDS = 5.0
CONVERGE_DEADLINE = 120.0
DRAIN_DEADLINE = 180.0
MIX = {  # relative weights of the operations of one client step
    "first_login": 8,
    "cached_login": 35,
    "share": 22,
    "unshare": 12,
    "member": 15,
    "rotate": 8,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- nginx -----------------------------------------------------------------------------------


def ensure_nginx() -> str | None:
    """The nginx binary, installed with apt-get if missing (its own service kept from starting).
    None if it cannot be had; the caller then balances round-robin itself."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found:
        return found
    if os.geteuid() != 0:
        return None
    log("installing nginx with apt-get")
    policy = Path("/usr/sbin/policy-rc.d")
    added = not policy.exists()
    if added:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for args in (
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "nginx"],
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "nginx"],
        ):
            done = subprocess.run(args, env=env, stdin=subprocess.DEVNULL, capture_output=True)
            if args[1] == "install" and done.returncode == 0:
                break
    finally:
        if added:
            policy.unlink(missing_ok=True)
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )


@contextmanager
def nginx_balancer(binary: str, ports: list[int], workdir: Path) -> Iterator[str]:
    """nginx on a free loopback port, round-robin over ``ports``; yields its base URL.

    A refused connection (a killed replica) is retried on the next server; a request already
    sent to a replica that dies is not (POSTs are not idempotent), so its client sees a 502.
    """
    port = free_port()
    tmp = workdir / "nginx"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
        (tmp / sub).chmod(0o777)
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=0;" for p in ports)
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 2048; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  upstream mms {{
{servers}
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://mms;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
      proxy_connect_timeout 2s;
      proxy_read_timeout 120s;
    }}
  }}
}}
"""
    )
    with (tmp / "stdout.log").open("wb") as out:
        proc = subprocess.Popen(
            [binary, "-p", str(tmp), "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not port_open(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start; see {tmp}/error.log")
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


class RoundRobinTransport(httpx.AsyncBaseTransport):
    """Fallback when nginx cannot be installed: the client itself rotates over the replicas,
    skipping one that refuses the connection (as nginx's ``proxy_next_upstream error``)."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = [httpx.URL(u) for u in urls]
        self.turn = itertools.cycle(range(len(urls)))
        self.inner = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=CLIENTS * 2, max_keepalive_connections=CLIENTS)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(len(self.urls)):
            target = self.urls[next(self.turn)]
            request.url = request.url.copy_with(host=target.host, port=target.port)
            try:
                return await self.inner.handle_async_request(request)
            except httpx.ConnectError:
                continue
        raise httpx.ConnectError("every replica refused the connection")

    async def aclose(self) -> None:
        await self.inner.aclose()


# --- replicas --------------------------------------------------------------------------------


class Replica:
    """One service process on a fixed port, so it can be SIGKILLed and started again behind
    the same balancer."""

    def __init__(self, index: int, env: dict[str, str], log_dir: Path) -> None:
        self.index = index
        self.env = env
        self.port = free_port()
        self.log_path = log_dir / f"replica-{index}.log"
        self.pid = 0
        self._lives_peak_mib = 0.0
        self._stack: ExitStack | None = None

    def start(self) -> None:
        stack = ExitStack()
        stack.enter_context(
            service_process(self.env, self.log_path, on_start=self._started, port=self.port)
        )
        self._stack = stack

    def _started(self, pid: int) -> None:
        self.pid = pid

    def peak_rss_mib(self) -> float:
        """The largest VmHWM of this replica's processes so far, over every restart."""
        if self._stack is None or not self.pid:
            return self._lives_peak_mib
        current = _peak_rss_mib(self.pid)  # NaN once the process is gone
        return self._lives_peak_mib if math.isnan(current) else max(self._lives_peak_mib, current)

    def kill9(self) -> None:
        self._lives_peak_mib = self.peak_rss_mib()  # read before the process is gone
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        if self._stack is not None:
            self._stack.close()  # reaps the killed process
            self._stack = None

    def restart(self) -> None:
        self.kill9()
        self.start()

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None


# --- the workload ----------------------------------------------------------------------------


@dataclass
class User:
    name: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Window:
    """One fault: when the victim died, when it was back, when everything agreed again."""

    victim: str
    killed: float
    back: float = 0.0
    converged: float | None = None
    outbox_drained: float | None = None
    probe_enforced: float | None = None
    probe_status: str = ""
    backlog: int | None = None  # outbox.pending at the first poll after the return


@dataclass
class Call:
    op: str
    start: float
    end: float
    status: int
    proxy_error: bool = False


@dataclass
class State:
    users: list[User] = field(default_factory=list)
    owners: list[User] = field(default_factory=list)
    paths: list[tuple[User, str]] = field(default_factory=list)
    tenants: list[str] = field(default_factory=list)
    involved_paths: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    involved_tenants: dict[str, set[str]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    new_users_made: int = 0
    admin: User | None = None


class Chaos:
    def __init__(
        self,
        url: str,
        kbase_url: str,
        endpoint: str,
        duration: float,
        transport: httpx.AsyncBaseTransport | None = None,
        seed: int = 7,
    ) -> None:
        self.url = url
        self.kbase_url = kbase_url
        self.endpoint = endpoint
        self.duration = duration
        self.rng = random.Random(seed)
        self.state = State()
        self.max_new_users = max(100, int(duration))
        self.http = httpx.AsyncClient(
            base_url=url,
            timeout=120,
            limits=httpx.Limits(max_connections=CLIENTS * 2, max_keepalive_connections=CLIENTS),
            transport=transport,
        )
        self.seeder = ""
        self.probe: tuple[User, S3User, User, S3User]
        """(owner, their S3, grantee, their S3) for convergence probes; outside the pool the
        clients draw from, so no rotation or share by the workload changes them."""

    async def close(self) -> None:
        await self.http.aclose()

    async def new_kbase_user(self, *, admin: bool = False) -> User:
        name = f"c{self.rng.getrandbits(48):012x}"
        token = f"chaos-{name}-{self.rng.getrandbits(64):016x}"
        roles = ["BERDL_USER", "KBASE_ADMIN"] if admin else ["BERDL_USER"]
        body = {
            "user": name,
            "display": name,
            "email": f"{name}@chaos.example",
            "customroles": roles,
            "tokens": [{"token": token, "expires_in_ms": 86_400_000}],
        }
        async with httpx.AsyncClient(timeout=10) as stub:
            (await stub.post(self.kbase_url + "_stub/users", json=body)).raise_for_status()
        return User(name, token)

    async def request(
        self, op: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response | None:
        start = time.monotonic()
        response: httpx.Response | None
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError:
            response = None
        status = response.status_code if response is not None else 0
        proxy_error = (
            response is not None
            and status >= 500
            and not response.headers.get("content-type", "").startswith("application/json")
        )
        self.state.calls.append(Call(op, start, time.monotonic(), status, proxy_error))
        return response

    # --- setup ---

    async def issue(self, user: User) -> S3User:
        response = await self.request("setup", "GET", "/credentials/", headers=user.headers)
        assert response is not None and response.status_code == 200, response
        body = response.json()
        return S3User(body["access_key"], body["secret_key"], self.endpoint)

    async def setup(self) -> None:
        state = self.state
        state.admin = await self.new_kbase_user(admin=True)
        for _ in range(INITIAL_USERS):
            user = await self.new_kbase_user()
            response = await self.request("setup", "GET", "/credentials/", headers=user.headers)
            assert response is not None and response.status_code == 200, response
            body = response.json()
            state.users.append(user)
            if len(state.owners) < OWNERS:
                state.owners.append(user)
                s3 = S3User(body["access_key"], body["secret_key"], self.endpoint)
                for n in range(PATHS_PER_OWNER):
                    assert await asyncio.to_thread(s3.can_put, BUCKET, data_key(user, f"p{n}"))
                    state.paths.append((user, f"p{n}"))
                    state.involved_paths[(user.name, f"p{n}")] = set()
        seeder = state.users[-1]
        self.seeder = seeder.name
        probe_owner, probe_grantee = await self.new_kbase_user(), await self.new_kbase_user()
        owner_s3, grantee_s3 = [await self.issue(u) for u in (probe_owner, probe_grantee)]
        self.probe = (probe_owner, owner_s3, probe_grantee, grantee_s3)
        seeder_body = await self.request("setup", "GET", "/credentials/", headers=seeder.headers)
        assert seeder_body is not None
        seeder_s3 = S3User(
            seeder_body.json()["access_key"], seeder_body.json()["secret_key"], self.endpoint
        )
        for _ in range(TENANTS):
            tenant = f"t{self.rng.getrandbits(40):010x}"
            response = await self.request(
                "setup", "POST", f"/management/groups/{tenant}", headers=state.admin.headers
            )
            assert response is not None and response.status_code == 201, response
            response = await self.request(
                "setup",
                "POST",
                f"/tenants/{tenant}/members/{seeder.name}",
                params={"permission": "read_write"},
                headers=state.admin.headers,
            )
            assert response is not None and response.status_code == 200, response
            assert await asyncio.to_thread(seeder_s3.can_put, BUCKET, tenant_key(tenant))
            state.tenants.append(tenant)
            state.involved_tenants[tenant] = set()

    # --- one client ---

    async def client(self, index: int, stop: asyncio.Event, hard_stop: float) -> None:
        rng = random.Random(1000 + index)
        ops = list(MIX)
        weights = list(MIX.values())
        while not stop.is_set() and time.monotonic() < hard_stop:
            op = rng.choices(ops, weights)[0]
            await getattr(self, f"op_{op}")(rng)
            await asyncio.sleep(rng.uniform(0, 0.05))

    async def op_first_login(self, rng: random.Random) -> None:
        if self.state.new_users_made >= self.max_new_users:
            await self.op_cached_login(rng)
            return
        self.state.new_users_made += 1
        user = await self.new_kbase_user()
        for _ in range(20):  # a new user's spawner retries until it gets credentials
            response = await self.request(
                "first_login", "GET", "/credentials/", headers=user.headers
            )
            if response is not None and response.status_code == 200:
                self.state.users.append(user)
                return
            await asyncio.sleep(0.5 + rng.random())

    async def op_cached_login(self, rng: random.Random) -> None:
        user = rng.choice(self.state.users)
        await self.request("cached_login", "GET", "/credentials/", headers=user.headers)

    async def op_share(self, rng: random.Random) -> None:
        owner, path = rng.choice(self.state.paths)
        grantee = rng.choice(self.state.users)
        if grantee.name == owner.name:
            return
        self.state.involved_paths[(owner.name, path)].add(grantee.name)
        body = {
            "path": path_url(owner, path),
            "with_users": [grantee.name],
            "permission": rng.choice(["read", "write"]),
        }
        await self.request("share", "POST", "/sharing/share", json=body, headers=owner.headers)

    async def op_unshare(self, rng: random.Random) -> None:
        owner, path = rng.choice(self.state.paths)
        held = self.state.involved_paths[(owner.name, path)]
        if not held:
            return
        grantee = rng.choice(sorted(held))
        body = {"path": path_url(owner, path), "from_users": [grantee]}
        await self.request("unshare", "POST", "/sharing/unshare", json=body, headers=owner.headers)

    async def op_member(self, rng: random.Random) -> None:
        assert self.state.admin is not None
        tenant = rng.choice(self.state.tenants)
        user = rng.choice(self.state.users)
        if user.name == self.seeder:  # keeps read-write: it wrote the tenant's probe object
            return
        self.state.involved_tenants[tenant].add(user.name)
        url = f"/tenants/{tenant}/members/{user.name}"
        target = rng.choice(["read_write", "read_only", None])
        if target is None:
            await self.request("member", "DELETE", url, headers=self.state.admin.headers)
        else:
            await self.request(
                "member",
                "POST",
                url,
                params={"permission": target},
                headers=self.state.admin.headers,
            )

    async def op_rotate(self, rng: random.Random) -> None:
        user = rng.choice(self.state.users)
        await self.request("rotate", "POST", "/credentials/rotate", headers=user.headers)

    # --- measuring convergence ---

    async def outbox(self) -> int | None:
        """``outbox.pending`` (None: no outbox section; -1: /health unanswered)."""
        return (await self.outbox_state())[0]

    async def outbox_state(self) -> tuple[int | None, float]:
        """(pending, age in seconds of the oldest pending row; 0 when none)."""
        try:
            body = (await self.http.get("/health")).json()
        except (httpx.HTTPError, ValueError):
            return -1, float("inf")
        outbox = body.get("outbox")
        oldest = outbox.get("oldest_pending_seconds") if isinstance(outbox, dict) else None
        return outbox_pending(body), float(oldest or 0.0)

    async def measure(self, window: Window, probe: tuple[User, User, S3User, str]) -> None:
        """From the victim's return until the outage's outbox backlog is gone and the probe
        share is enforced."""
        owner, grantee, grantee_s3, path = probe
        deadline = window.back + CONVERGE_DEADLINE
        recorded = window.probe_status.startswith("2")
        while time.monotonic() < deadline:
            if not recorded:
                response = await self.request(
                    "probe",
                    "POST",
                    "/sharing/share",
                    json={"path": path_url(owner, path), "with_users": [grantee.name]},
                    headers=owner.headers,
                )
                if response is not None and response.status_code in (200, 202):
                    recorded = True
                    window.probe_status += f" then {response.status_code} after return"
            # Each time is taken when the check has answered (so it includes the check).
            # With 64 clients sharing, rows are always being enforced inline, so "pending = 0"
            # may never be seen under traffic: the outage's backlog is gone when no row pending
            # now has been pending since before the victim came back.
            asked = time.monotonic()
            pending, oldest = await self.outbox_state()
            if window.backlog is None and pending is not None and pending >= 0:
                window.backlog = pending
            if window.outbox_drained is None and (
                pending in (0, None)
                or (pending is not None and pending > 0 and oldest < asked - window.back)
            ):
                window.outbox_drained = time.monotonic()
            if (
                recorded
                and window.probe_enforced is None
                and await can_read(grantee_s3, BUCKET, data_key(owner, path))
            ):
                window.probe_enforced = time.monotonic()
            if window.outbox_drained is not None and window.probe_enforced is not None:
                window.converged = max(window.outbox_drained, window.probe_enforced)
                return
            await asyncio.sleep(0.1)


def data_key(owner: User, path: str) -> str:
    return f"users-general-warehouse/{owner.name}/{path}/data.txt"


def path_url(owner: User, path: str) -> str:
    return f"s3a://{BUCKET}/users-general-warehouse/{owner.name}/{path}/"


def tenant_key(tenant: str) -> str:
    return f"tenant-general-warehouse/{tenant}/data/seed.txt"


# --- the run ---------------------------------------------------------------------------------


async def fault_loop(
    chaos: Chaos,
    victims: list[tuple[str, Callable[[], None], Callable[[], None]]],
    start: float,
    stop_at: float,
) -> None:
    """Kill each victim in turn at evenly spaced times; measure convergence after each."""
    slot = (stop_at - start) / (len(victims) + 1)
    probe_owner, owner_s3, probe_grantee, grantee_s3 = chaos.probe
    for n, (victim, kill, restart) in enumerate(victims, start=1):
        await asyncio.sleep(max(0.0, start + n * slot - time.monotonic()))
        path = f"probe{n}"
        assert await asyncio.to_thread(owner_s3.can_put, BUCKET, data_key(probe_owner, path))
        window = Window(victim, time.monotonic())
        chaos.state.windows.append(window)
        log(f"SIGKILL {victim}")
        await asyncio.to_thread(kill)
        await asyncio.sleep(1.0)
        response = await chaos.request(
            "probe",
            "POST",
            "/sharing/share",
            json={"path": path_url(probe_owner, path), "with_users": [probe_grantee.name]},
            headers=probe_owner.headers,
        )
        window.probe_status = str(response.status_code if response is not None else 0)
        await asyncio.sleep(max(0.0, window.killed + OUTAGE_SECONDS - time.monotonic()))
        await asyncio.to_thread(restart)
        window.back = time.monotonic()
        log(f"{victim} back after {window.back - window.killed:.1f}s")
        await chaos.measure(window, (probe_owner, probe_grantee, grantee_s3, path))
        took = f"{window.converged - window.back:.2f}s" if window.converged else "NOT converged"
        log(f"{victim}: converged {took}")


async def final_checks(chaos: Chaos) -> dict[str, Any]:
    """After the outbox drains: records against S3, and every cached pair at S3."""
    state = chaos.state
    drain_deadline = time.monotonic() + DRAIN_DEADLINE
    drain_started = time.monotonic()
    pending = await chaos.outbox()
    while pending not in (0, None) and time.monotonic() < drain_deadline:
        await asyncio.sleep(0.5)
        pending = await chaos.outbox()
    drained_in = time.monotonic() - drain_started
    slots = asyncio.Semaphore(16)

    async def bounded(job: Awaitable[Any]) -> Any:
        async with slots:
            return await job

    async def credentials(user: User) -> tuple[User, S3User | None]:
        for _ in range(10):
            response = await chaos.http.get("/credentials/", headers=user.headers)
            if response.status_code == 200:
                body = response.json()
                return user, S3User(body["access_key"], body["secret_key"], chaos.endpoint)
            await asyncio.sleep(1)
        return user, None

    pairs = await asyncio.gather(*(bounded(credentials(u)) for u in state.users))
    s3_of = {user.name: s3 for user, s3 in pairs}
    unanswered = [u.name for u, s3 in pairs if s3 is None]

    async def stale(user: User, s3: S3User | None) -> bool:
        if s3 is None:
            return False
        return not await pair_works(s3, BUCKET, f"users-general-warehouse/{user.name}/")

    stale_flags = await asyncio.gather(*(bounded(stale(u, s3)) for u, s3 in pairs))
    lost, leaked, unchecked, checked = [], [], 0, 0

    async def check_path(owner: User, path: str) -> None:
        nonlocal unchecked, checked
        readers = await path_readers(chaos.http, owner.headers, path_url(owner, path))
        if readers is None:
            unchecked += len(state.involved_paths[(owner.name, path)])
            return
        for name in sorted(state.involved_paths[(owner.name, path)]):
            s3 = s3_of.get(name)
            if s3 is None:
                unchecked += 1
                continue
            checked += 1
            readable = await can_read(s3, BUCKET, data_key(owner, path))
            if name in readers and not readable:
                lost.append(f"{owner.name}/{path} -> {name}")
            if name not in readers and readable:
                leaked.append(f"{owner.name}/{path} -> {name}")

    async def check_tenant(tenant: str) -> None:
        nonlocal unchecked, checked
        assert state.admin is not None
        levels = await tenant_levels(chaos.http, state.admin.headers, tenant)
        if levels is None:
            unchecked += len(state.involved_tenants[tenant])
            return
        for name in sorted(state.involved_tenants[tenant]):
            s3 = s3_of.get(name)
            if s3 is None:
                unchecked += 1
                continue
            checked += 1
            readable = await can_read(s3, BUCKET, tenant_key(tenant))
            if name in levels and not readable:
                lost.append(f"{tenant} member {name}")
            if name not in levels and readable:
                leaked.append(f"{tenant} non-member {name}")

    await asyncio.gather(
        *(bounded(check_path(o, p)) for o, p in state.paths),
        *(bounded(check_tenant(t)) for t in state.tenants),
    )
    return {
        "outbox_after_drain": pending,
        "drain_seconds": drained_in,
        "users": len(state.users),
        "credentials_unanswered": unanswered,
        "stale": [u.name for (u, _), bad in zip(pairs, stale_flags, strict=True) if bad],
        "grants_checked": checked,
        "unchecked": unchecked,
        "lost": lost,
        "leaked": leaked,
    }


def report(chaos: Chaos, final: dict[str, Any], meta: dict[str, str]) -> str:
    state = chaos.state
    calls = [c for c in state.calls if c.op != "setup"]
    statuses = Counter(c.status for c in calls)
    by_op = Counter(c.op for c in calls)
    lines = [f"{k}: {v}" for k, v in meta.items()]
    lines.append(
        f"requests: {len(calls)} ({', '.join(f'{k} {v}' for k, v in sorted(by_op.items()))})"
    )
    latencies = sorted(c.end - c.start for c in calls)
    if latencies:
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        lines.append(f"latency through the balancer: p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    lines.append(
        "status counts: "
        + ", ".join(f"{k or 'no answer'}: {v}" for k, v in sorted(statuses.items()))
    )
    failing = Counter((c.op, c.status) for c in calls if not 200 <= c.status < 300)
    lines.append(
        "non-2xx by operation: "
        + (", ".join(f"{op} {st}: {n}" for (op, st), n in sorted(failing.items())) or "none")
    )
    outside = sum(
        1
        for c in calls
        if c.status == 503
        and not any(
            w.killed <= c.end <= (w.converged or w.back + CONVERGE_DEADLINE) for w in state.windows
        )
    )
    lines.append(
        "outage windows (503s answered between kill and convergence;"
        " time to converge after the victim is back):"
    )
    for w in state.windows:
        end = w.converged or (w.back + CONVERGE_DEADLINE)
        n503 = sum(1 for c in calls if c.status == 503 and w.killed <= c.end <= end)
        n_in = sum(1 for c in calls if w.killed <= c.end <= end)
        conv = f"{w.converged - w.back:.2f}s" if w.converged else "NOT converged"
        drained = f"{w.outbox_drained - w.back:.2f}s" if w.outbox_drained else "-"
        probe = f"{w.probe_enforced - w.back:.2f}s" if w.probe_enforced else "-"
        lines.append(
            f"  {w.victim:<9} down {w.back - w.killed:4.1f}s  503s {n503:5d} of {n_in:5d} answers"
            f"  converge {conv} (outage backlog gone {drained}, probe share enforced {probe};"
            f" probe answered {w.probe_status}; outbox backlog {w.backlog})"
        )
    lines.append(f"503s outside the outage windows: {outside}")
    other = [c for c in calls if c.status >= 500 and c.status != 503]
    proxy = [c for c in other if c.proxy_error]
    lines.append(
        f"5xx other than 503: {len(other)} (from nginx, requests in flight on a killed replica:"
        f" {len(proxy)}; from the service: {len(other) - len(proxy)})"
    )
    lines.append(f"no answer (client-side error/timeout): {statuses.get(0, 0)}")
    lines.append(
        f"final: outbox pending after drain {final['outbox_after_drain']} "
        f"({final['drain_seconds']:.1f}s); users {final['users']}; "
        f"grants and memberships checked at S3 {final['grants_checked']}"
        f" (unchecked {final['unchecked']})"
    )
    lines.append(f"lost grants (recorded, not enforced): {len(final['lost'])}")
    lines.append(f"revoked but readable: {len(final['leaked'])}")
    lines.append(f"stale credentials (cached pair refused by S3): {len(final['stale'])}")
    lines.append(f"credentials unanswered at the end: {len(final['credentials_unanswered'])}")
    for label in ("lost", "leaked", "stale"):
        for item in final[label][:10]:
            lines.append(f"  {label}: {item}")
    return "\n".join(lines)


async def run(
    url: str,
    kbase_url: str,
    stack: PrivateStack,
    replicas: list[Replica],
    duration: float,
    meta: dict[str, str],
    transport: httpx.AsyncBaseTransport | None = None,
) -> tuple[str, bool]:
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(16))
    chaos = Chaos(url, kbase_url, stack.minio.endpoint, duration, transport)
    try:
        await chaos.setup()
        log(f"setup done: {len(chaos.state.users)} users, {len(chaos.state.paths)} paths")
        start = time.monotonic()
        stop_at = start + duration
        # Each round kills MinIO, PostgreSQL, Redis and then one replica (another each round).
        schedule: list[tuple[str, Callable[[], None], Callable[[], None]]] = []
        for r in range(max(1, int(duration // 240))):
            tag = "" if r == 0 else f"#{r + 1}"
            replica = replicas[r % REPLICAS]
            schedule += [
                (f"minio{tag}", stack.minio.kill9, stack.minio.restart),
                (f"postgres{tag}", stack.postgres.kill9, stack.postgres.restart),
                (f"redis{tag}", stack.redis.kill9, stack.redis.restart),
                (f"replica{replica.index}{tag}", replica.kill9, replica.restart),
            ]
        # Traffic runs for the duration, and on until the last fault has been measured.
        stop = asyncio.Event()
        hard_stop = stop_at + len(schedule) * (CONVERGE_DEADLINE + 60)
        clients = [asyncio.ensure_future(chaos.client(i, stop, hard_stop)) for i in range(CLIENTS)]
        try:
            await fault_loop(chaos, schedule, start, stop_at)
            await asyncio.sleep(max(5.0, stop_at - time.monotonic()))
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*clients), timeout=300)
        log("traffic stopped; waiting for the outbox to drain, then checking S3")
        final = await final_checks(chaos)
        text = report(chaos, final, meta)
        # CHAOS_REQUIRE_CONVERGENCE=0 still fails on a lost grant, a leak or a stale pair, but
        # only reports a window that did not converge (for runs on a machine too loaded for
        # the deadline). CI (make chaos-short) requires convergence again since the MinIO
        # IAM-load race was fixed (docs/reliability.md).
        require_convergence = os.environ.get("CHAOS_REQUIRE_CONVERGENCE", "1") != "0"
        ok = (
            not final["lost"]
            and not final["leaked"]
            and not final["stale"]
            and (all(w.converged for w in chaos.state.windows) or not require_convergence)
        )
        return text, ok
    finally:
        await chaos.close()


def main() -> int:
    duration = float(os.environ.get("CHAOS_SECONDS", "600"))
    workdir = Path(tempfile.mkdtemp(prefix="mms-chaos-"))
    workdir.chmod(0o755)
    log(f"chaos: {duration:.0f}s, {CLIENTS} clients, {REPLICAS} replicas; logs in {workdir}")
    with ExitStack() as cleanup:
        stack = PrivateStack(prefix="mms-chaos-stack-").start()
        passed = [False]
        # The private stack's data and logs are kept only when something failed.
        cleanup.callback(lambda: stack.stop(keep=not passed[0]))
        stub = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "kbase_stub.py"), "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        cleanup.callback(stub.wait, 10)
        cleanup.callback(stub.terminate)
        assert stub.stdout is not None
        kbase_url = stub.stdout.readline().strip().rsplit(" ", 1)[-1]
        env = {
            **stack.env,
            "KBASE_AUTH_URL": kbase_url,
            "LOG_LEVEL": "WARNING",
            "MINIO_TIMEOUT_SECONDS": "5",
            "CREDENTIAL_LOCK_WAIT_SECONDS": "10",
            "GROUP_LOCK_WAIT_SECONDS": "10",
            "DB_POOL_SIZE": "10",
        }
        replicas = [Replica(i, env, workdir) for i in range(REPLICAS)]
        for replica in replicas:
            replica.start()
            cleanup.callback(replica.stop)
        binary = ensure_nginx()
        meta = {
            "machine": f"{os.cpu_count()} cores, {_mem_gib():.0f} GiB",
            "duration": f"{duration:.0f}s, {CLIENTS} clients, {REPLICAS} replicas",
        }
        if binary:
            url = cleanup.enter_context(nginx_balancer(binary, [r.port for r in replicas], workdir))
            meta["balancer"] = f"nginx ({_nginx_version(binary)}), round-robin"
            text, ok = asyncio.run(run(url, kbase_url, stack, replicas, duration, meta))
        else:
            meta["balancer"] = "round-robin client (nginx could not be installed)"
            transport = RoundRobinTransport([f"http://127.0.0.1:{r.port}" for r in replicas])
            text, ok = asyncio.run(
                run("http://balancer", kbase_url, stack, replicas, duration, meta, transport)
            )
        peaks = ", ".join(f"{r.peak_rss_mib():.0f}" for r in replicas)
        text += f"\nservice peak RSS (MiB, per replica, over its restarts): {peaks}"
        print(text, flush=True)
        (workdir / "report.txt").write_text(text + "\n")
        passed[0] = ok
    kept = "" if ok else f" and {stack.base}"
    log(f"report in {workdir / 'report.txt'}; logs kept in {workdir}{kept}")
    return 0 if ok else 1


def _mem_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def _nginx_version(binary: str) -> str:
    done = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    return done.stderr.strip().rsplit("/", 1)[-1] or "unknown version"


if __name__ == "__main__":
    sys.exit(main())
