"""Scale benchmark: the service with many users, tenants and share records (prints figures).

Runs on a private stack of its own (``tests/support/private_stack.py``: PostgreSQL, Redis and
MinIO in a temporary directory, on free ports), so tests and other benchmarks are untouched.
One service process (1 uvicorn worker) and the KBase stand-in, as in the other benchmarks.

Before seeding, the empty database is measured. Then, for each size in ``SCALE_USERS``
(default ``1000,10000``; sizes grow, each step adds to the last):

- users: ``SCALE_REAL_LOGINS`` (default 50) brand-new KBase users log in through the API
  (``GET /credentials/``, ``SCALE_SEED_CONCURRENCY`` at a time); the rest are seeded in bulk
  (``bench/scale_seed.py``: MinIO's ``import-iam`` with the documents the service renders,
  marker objects by S3, records by ``COPY`` with the secrets encrypted by pgcrypto as the
  service does). A sample of seeded users then gets its pair from ``GET /credentials/`` and
  uses it at S3, and ``regenerate-policies`` — which compares every document with the store —
  is run on the freshly seeded store and says how many documents it had to write;
- tenants: ``SCALE_TENANTS_PER_USER`` × users (default 0.2: 2 000 at 10 000), seeded in bulk
  the same way as ``POST /management/groups/{g}`` leaves them, five members each (four in
  ``g``, one in ``g``ro);
- shares: ``SCALE_SHARES_PER_USER`` × users records (default 100: 1 000 000 at 10 000) by
  ``COPY`` into ``shares``: each user shares paths of its home with random users (one in ten
  with a tenant). One extra principal holds exactly 1000 shares (rendered once by the API).

and then measured: cached ``GET /credentials/`` (wrk, c=16) against the empty database's
figure; first login (sequential, new users); ``GET /tenants`` (wrk, c=16, warm); a share to
the principal holding 1000 shares (share + unmeasured unshare); ``regenerate-policies`` for
everyone; what MinIO itself costs (admin calls timed directly, its RSS and data on disk).
The load average is printed with each figure: the machine is shared.

The first logins timed are also broken down by dependency call (the service's own
``/metrics``: calls per login and mean time of each), and each regenerate by the admin calls it
made (documents read, written, attachments set).

``SCALE_WRK_SECONDS`` (default 5), ``SCALE_LOGINS`` (first logins timed, default 30),
``SCALE_SHARE_SAMPLES`` (default 20), ``SCALE_REGENERATE=0`` skips regenerate,
``SCALE_SEED_MARKERS=0`` seeds no marker objects for bulk users, ``SCALE_VERIFY`` (seeded users
checked, default 20), ``SCALE_STACK_DIR`` (default /tmp; /dev/shm puts PostgreSQL's and MinIO's
data in memory, so no write waits for the VM's shared disk).
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ceiling import ensure_wrk, wrk
from harness import REPO, Service, closed_loop, migrate, percentile, summary
from scale_seed import Seeder
from tests.support.private_stack import PrivateStack
from tests.support.processes import service_process
from tests.support.s3 import S3User

from minio_manager.config import Settings
from minio_manager.objectstore.minio import MinioStore

SIZES = [int(n) for n in os.environ.get("SCALE_USERS", "1000,10000").split(",")]
TENANTS_PER_USER = float(os.environ.get("SCALE_TENANTS_PER_USER", "0.2"))
SHARES_PER_USER = int(os.environ.get("SCALE_SHARES_PER_USER", "100"))
SEED_CONCURRENCY = int(os.environ.get("SCALE_SEED_CONCURRENCY", "16"))
WRK_SECONDS = int(os.environ.get("SCALE_WRK_SECONDS", "5"))
LOGINS = int(os.environ.get("SCALE_LOGINS", "30"))
SHARE_SAMPLES = int(os.environ.get("SCALE_SHARE_SAMPLES", "20"))
REGENERATE = os.environ.get("SCALE_REGENERATE", "1") != "0"
REAL_LOGINS = int(os.environ.get("SCALE_REAL_LOGINS", "50"))
SEED_MARKERS = os.environ.get("SCALE_SEED_MARKERS", "1") != "0"
VERIFY = int(os.environ.get("SCALE_VERIFY", "20"))
STACK_DIR = os.environ.get("SCALE_STACK_DIR", "/tmp")  # noqa: S108 - mkdtemp below it
BUCKET = "cdm-lake"
HEAVY_OWNER, HEAVY_TARGET, HEAVY_SHARES = "scaleheavyowner", "scaleheavy", 1000


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def log(message: str) -> None:
    print(message, flush=True)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def home_key(user: str, rest: str) -> str:
    return f"users-general-warehouse/{user}/{rest}"


@dataclass
class Step:
    """Figures of one size (the empty database is size 0)."""

    users: int
    tenants: int
    shares: int
    figures: dict[str, float] = field(default_factory=dict)
    loads: dict[str, str] = field(default_factory=dict)

    def note(self, name: str, value: float) -> None:
        self.figures[name] = value
        self.loads[name] = load()


class Scale:
    def __init__(self, service: Service, stack: PrivateStack, client: httpx.AsyncClient) -> None:
        self.service = service
        self.stack = stack
        self.client = client
        env = stack.env
        self.store = MinioStore(
            env["MINIO_ENDPOINT"], env["MINIO_ROOT_USER"], env["MINIO_ROOT_PASSWORD"]
        )
        self.admin = service.add_user("scaleadmin", admin=True)
        layout = Settings.model_construct(
            **{k: f.default for k, f in Settings.model_fields.items() if k.startswith("cdm_")}
        ).layout
        self.seeder = Seeder(self.store, layout, env["MMS_DB_ENCRYPTION_KEY"])
        self.seeded: dict[str, str] = {}
        self.users: list[str] = []
        self.tenants: list[str] = []
        self.shares = 0
        self.rng = random.Random(12)
        self.wrk_binary = ensure_wrk()

    # -- seeding --------------------------------------------------------------------------------
    async def login(self, name: str) -> str:
        token = self.service.add_user(name)
        response = await self.client.get("/credentials/", headers=bearer(token))
        if response.status_code != 200:
            raise RuntimeError(f"first login of {name}: {response.status_code} {response.text}")
        return token

    async def seed_users(self, total: int) -> None:
        """Up to ``total`` users: ``REAL_LOGINS`` by first login through the API, the rest in
        bulk (``scale_seed.py``)."""
        start = len(self.users)
        real = [f"sr{start + n:06d}" for n in range(min(REAL_LOGINS, total - start))]
        bulk = [f"su{start + n:06d}" for n in range(total - start - len(real))]

        async def one(i: int) -> None:
            await self.login(real[i])

        seconds, _ = await closed_loop(SEED_CONCURRENCY, len(real), one)
        log(
            f"  {len(real)} users by first login through the API in {seconds:.1f}s "
            f"({len(real) / seconds:.1f}/s, concurrency {SEED_CONCURRENCY}, load {load()})"
        )
        began = time.perf_counter()
        conn = await self.connect()
        try:
            secrets_, phases = await self.seeder.users(conn, bulk, markers=SEED_MARKERS)
        finally:
            await conn.close()
        seconds = time.perf_counter() - began
        self.seeded.update(secrets_)
        self.users += real + bulk
        log(
            f"  {len(bulk)} users seeded in bulk in {seconds:.1f}s ({len(bulk) / seconds:.0f}/s; "
            + ", ".join(f"{k} {v:.1f}s" for k, v in phases.items())
            + f"; markers {'yes' if SEED_MARKERS else 'no'}; load {load()})"
        )

    async def seed_tenants(self, total: int) -> None:
        names = [f"st{len(self.tenants) + n:05d}x" for n in range(total - len(self.tenants))]
        members = {name: self.rng.sample(self.users, 5) for name in names}
        began = time.perf_counter()
        conn = await self.connect()
        try:
            phases = await self.seeder.tenants(conn, members, "scaleadmin", markers=SEED_MARKERS)
        finally:
            await conn.close()
        seconds = time.perf_counter() - began
        self.tenants += names
        log(
            f"  {len(names)} tenants (+5 members each) seeded in bulk in {seconds:.1f}s ("
            + ", ".join(f"{k} {v:.1f}s" for k, v in phases.items())
            + f"; load {load()})"
        )

    async def verify_seed(self) -> None:
        """Seeded users get their seeded pair from the API, and it works at S3."""
        sample = self.rng.sample(sorted(self.seeded), min(VERIFY, len(self.seeded)))
        endpoint = self.stack.env["MINIO_ENDPOINT"]
        for name in sample:
            token = self.service.add_user(name)
            response = await self.client.get("/credentials/", headers=bearer(token))
            response.raise_for_status()
            pair = response.json()
            if pair["access_key"] != name or pair["secret_key"] != self.seeded[name]:
                raise RuntimeError(f"seeded user {name}: the API handed out another pair")
            s3 = S3User(pair["access_key"], pair["secret_key"], endpoint)
            key = home_key(name, "data/seed-check")
            if not (await asyncio.to_thread(s3.can_put, BUCKET, key)):
                raise RuntimeError(f"seeded user {name} cannot write its home")
            if await asyncio.to_thread(s3.can_put, BUCKET, home_key(self.users[0], "data/x")):
                raise RuntimeError(f"seeded user {name} can write another user's home")
        log(f"  seed check: {len(sample)} seeded users got their pair from the API, S3 ok")

    async def seed_shares(self, total: int) -> None:
        """COPY share records up to ``total`` (no rendering: regenerate renders them)."""
        conn = await self.connect()
        rows: list[tuple[Any, ...]] = []
        start = time.perf_counter()
        n = self.shares
        try:
            if n == 0:
                rows += [
                    (
                        HEAVY_OWNER,
                        BUCKET,
                        home_key(HEAVY_OWNER, f"seed/d{i:05d}"),
                        "user",
                        HEAVY_TARGET,
                        "write",
                        HEAVY_OWNER,
                    )
                    for i in range(HEAVY_SHARES - 1)
                ]
                n += len(rows)
            while n < total:
                owner = self.users[n % len(self.users)]
                if n % 10 == 0:
                    kind, target = "group", self.rng.choice(self.tenants)
                else:
                    kind, target = "user", self.rng.choice(self.users)
                rows.append(
                    (owner, BUCKET, home_key(owner, f"s/{n:07d}"), kind, target, "read", owner)
                )
                n += 1
                if len(rows) >= 50_000:
                    await self._copy(conn, rows)
                    rows = []
            await self._copy(conn, rows)
            await conn.execute("ANALYZE shares")
        finally:
            await conn.close()
        log(
            f"  copied {n - self.shares} share rows in {time.perf_counter() - start:.0f}s "
            f"(total {n}, load {load()})"
        )
        self.shares = n

    @staticmethod
    async def _copy(conn: Any, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            await conn.copy_records_to_table(
                "shares",
                records=rows,
                columns=[
                    "owner",
                    "bucket",
                    "key",
                    "target_type",
                    "target_name",
                    "level",
                    "created_by",
                ],
            )

    async def connect(self) -> Any:
        import asyncpg

        env = self.stack.env
        return await asyncpg.connect(
            host=env["MMS_DB_HOST"],
            port=int(env["MMS_DB_PORT"]),
            user=env["MMS_DB_USER"],
            password=env["MMS_DB_PASSWORD"],
            database=env["MMS_DB_NAME"],
        )

    # -- measuring ------------------------------------------------------------------------------
    def wrk(self, token: str, path: str) -> tuple[float, float, float, int]:
        return wrk(self.wrk_binary, self.service.url, token, 16, path=path, seconds=WRK_SECONDS)

    async def measure(self, step: Step, probe: str, heavy_owner: str | None) -> None:
        rate, p50, p99, bad = self.wrk(probe, "/credentials/")
        step.note("cred_rps", rate)
        step.note("cred_p99", p99)
        log(
            f"  cached /credentials/ c=16: {rate:.0f} req/s p50={p50:.1f}ms p99={p99:.1f}ms"
            f"{f' NON-2XX {bad}' if bad else ''} (load {load()})"
        )

        first: list[float] = []
        before = await self.metrics()
        for _ in range(LOGINS):
            name = f"sf{secrets.token_hex(4)}"
            began = time.perf_counter()
            await self.login(name)
            first.append(time.perf_counter() - began)
            self.users.append(name)
        step.note("login_p50", percentile(first, 50) * 1000)
        log(f"  first login, sequential: {summary(first)} (load {load()})")
        log("    per login (calls, mean ms): " + _breakdown(before, await self.metrics(), LOGINS))

        (await self.client.get("/tenants", headers=bearer(probe))).raise_for_status()
        began = time.perf_counter()
        listed = (await self.client.get("/tenants", headers=bearer(probe))).json()
        one = time.perf_counter() - began
        rate, p50, p99, bad = self.wrk(probe, "/tenants")
        step.note("tenants_p99", p99)
        log(
            f"  GET /tenants ({len(listed)} tenants) c=16: {rate:.0f} req/s p50={p50:.1f}ms "
            f"p99={p99:.1f}ms{f' NON-2XX {bad}' if bad else ''}; one call alone "
            f"{one * 1000:.0f}ms (load {load()})"
        )

        if heavy_owner is not None:
            await self.heavy_shares(step, heavy_owner)
        if REGENERATE and step.users:
            await self.regenerate(step, "share rows copied since the last run", "regenerate_s")
        await self.store_costs(step)
        step.note("rss", self.service.peak_rss_mib())
        log(f"  service peak RSS so far: {step.figures['rss']:.0f} MiB")

    async def heavy_shares(self, step: Step, owner_token: str) -> None:
        async def call(endpoint: str, body: dict[str, object]) -> float:
            began = time.perf_counter()
            response = await self.client.post(endpoint, json=body, headers=bearer(owner_token))
            if response.status_code != 200:
                raise RuntimeError(f"{endpoint}: {response.status_code} {response.text}")
            return time.perf_counter() - began

        samples = []
        for n in range(SHARE_SAMPLES):
            path = f"s3a://{BUCKET}/{home_key(HEAVY_OWNER, f'probe/{step.users}/p{n:03d}')}"
            samples.append(
                await call("/sharing/share", {"path": path, "with_users": [HEAVY_TARGET]})
            )
            await call("/sharing/unshare", {"path": path, "from_users": [HEAVY_TARGET]})
        step.note("share_p50", percentile(samples, 50) * 1000)
        conn = await self.connect()
        try:
            held = await conn.fetchval(
                "SELECT count(*) FROM shares WHERE target_type = 'user' AND target_name = $1",
                HEAVY_TARGET,
            )
        finally:
            await conn.close()
        log(f"  share to a principal holding {held}: {summary(samples)} (load {load()})")

    async def metrics(self) -> dict[tuple[str, str], tuple[float, float]]:
        """The service's dependency calls so far: (dependency, operation) → (count, seconds)."""
        text = (await self.client.get("/metrics")).text
        found: dict[tuple[str, str], list[float]] = {}
        for line in text.splitlines():
            if not line.startswith("mms_dependency_call_duration_seconds_"):
                continue
            head, _, value = line.rpartition(" ")
            kind = head.split("{", 1)[0].rsplit("_", 1)[-1]
            if kind not in ("count", "sum"):
                continue
            labels = dict(
                part.split("=", 1) for part in head.split("{", 1)[1].rstrip("}").split(",")
            )
            key = (labels["dependency"].strip('"'), labels["operation"].strip('"'))
            pair = found.setdefault(key, [0.0, 0.0])
            pair[0 if kind == "count" else 1] = float(value)
        return {k: (v[0], v[1]) for k, v in found.items()}

    async def regenerate(self, step: Step, label: str, key: str) -> None:
        before = await self.metrics()
        began = time.perf_counter()
        response = await self.client.post(
            "/management/migrate/regenerate-policies", headers=bearer(self.admin), timeout=7200
        )
        seconds = time.perf_counter() - began
        after = await self.metrics()
        body = response.json()
        step.note(key, seconds)

        def calls(operation: str) -> int:
            op = ("object_store", operation)
            return round(after.get(op, (0, 0))[0] - before.get(op, (0, 0))[0])

        principals = (body.get("users_total") or 0) + (body.get("groups_total") or 0)
        log(
            f"  regenerate-policies ({label}): {response.status_code} in {seconds:.1f}s "
            f"({seconds / max(principals, 1) * 1000:.1f} ms per principal), users "
            f"{body.get('users_updated')}/{body.get('users_total')}, groups "
            f"{body.get('groups_updated')}/{body.get('groups_total')}, errors "
            f"{len(body.get('errors') or [])}; documents read {calls('admin:info-canned-policy')}"
            f", written {calls('admin:add-canned-policy')}, attachments set "
            f"{calls('admin:set-user-or-group-policy')}, user-info "
            f"{calls('admin:user-info')} (load {load()})"
        )

    async def store_costs(self, step: Step) -> None:
        """MinIO alone: admin calls timed straight from here, its memory and data on disk."""

        async def timed(call: Callable[[], Awaitable[Any]], n: int = 5) -> float:
            samples = []
            for _ in range(n):
                began = time.perf_counter()
                await call()
                samples.append(time.perf_counter() - began)
            return percentile(samples, 50) * 1000

        user = self.users[0] if self.users else "scaleadmin"
        probe = f"sx{secrets.token_hex(4)}"
        costs = {
            "user-info": await timed(lambda: self.store.get_user(user)),
            "group-info globalusers": await timed(lambda: self.store.get_group("globalusers")),
            "list-groups": await timed(self.store.list_groups),
            "list-users": await timed(self.store.list_users, 3),
            "add-user": await timed(lambda: self.store.set_user(probe, secrets.token_hex(20)), 3),
        }
        await self.store.delete_user(probe)
        step.note("minio_add_user", costs["add-user"])
        step.note("minio_list_users", costs["list-users"])
        rss = _rss_mib(self.stack.minio.pid)
        disk = _du_mib(self.stack.minio.data)
        step.note("minio_rss", rss)
        log(
            "  MinIO alone (p50): "
            + ", ".join(f"{k} {v:.1f}ms" for k, v in costs.items())
            + f"; RSS {rss:.0f} MiB, data {disk:.0f} MiB (load {load()})"
        )


def _breakdown(
    before: dict[tuple[str, str], tuple[float, float]],
    after: dict[tuple[str, str], tuple[float, float]],
    per: int,
) -> str:
    """Calls per unit and their mean time, by dependency operation, busiest first."""
    rows = []
    for key, (count, total) in after.items():
        calls = count - before.get(key, (0.0, 0.0))[0]
        seconds = total - before.get(key, (0.0, 0.0))[1]
        if calls >= 1:
            rows.append((seconds, f"{key[1]} {calls / per:.1f}×{seconds / calls * 1000:.1f}"))
    return ", ".join(text for _, text in sorted(rows, reverse=True))


def _rss_mib(pid: int | None) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _du_mib(path: Path) -> float:
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True).stdout
    return float(out.split()[0]) if out else float("nan")


def table(steps: list[Step]) -> str:
    rows = [
        ("cached /credentials/ c=16 req/s", "cred_rps", "{:.0f}"),
        ("cached /credentials/ c=16 p99 ms", "cred_p99", "{:.1f}"),
        ("first login p50 ms", "login_p50", "{:.0f}"),
        ("GET /tenants c=16 p99 ms", "tenants_p99", "{:.0f}"),
        (f"share p50 ms (target holds {HEAVY_SHARES})", "share_p50", "{:.0f}"),
        ("regenerate-policies s, store agrees (after seeding)", "regenerate_clean_s", "{:.0f}"),
        ("regenerate-policies s, after COPY of share rows", "regenerate_s", "{:.0f}"),
        ("MinIO add-user p50 ms", "minio_add_user", "{:.0f}"),
        ("MinIO list-users p50 ms", "minio_list_users", "{:.0f}"),
        ("MinIO RSS MiB", "minio_rss", "{:.0f}"),
        ("service peak RSS MiB", "rss", "{:.0f}"),
    ]
    head = (
        "| | "
        + " | ".join(f"{s.users} users, {s.tenants} tenants, {s.shares} shares" for s in steps)
        + " |"
    )
    lines = [head, "|---" * (len(steps) + 1) + "|"]
    for label, key, fmt in rows:
        cells = [fmt.format(s.figures[key]) if key in s.figures else "—" for s in steps]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def run(service: Service, stack: PrivateStack) -> list[Step]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=service.url, limits=limits, timeout=600) as client:
        scale = Scale(service, stack, client)
        probe = await scale.login("scaleprobe")
        steps = [Step(0, 0, 0)]
        log(f"empty database (load {load()}):")
        await scale.measure(steps[0], probe, None)
        # Both ends of the 1000 shares exist before their records: a first login drops share
        # rows that name a user who did not exist yet (stale rows of a deleted namesake).
        heavy = await scale.login(HEAVY_OWNER)
        await scale.login(HEAVY_TARGET)
        rendered = False
        try:
            for size in SIZES:
                tenants = max(1, round(size * TENANTS_PER_USER))
                log(f"size {size} users, {tenants} tenants, {size * SHARES_PER_USER} shares:")
                step = Step(size, tenants, size * SHARES_PER_USER)
                await scale.seed_users(size)
                await scale.seed_tenants(tenants)
                await scale.verify_seed()
                if REGENERATE:
                    await scale.regenerate(step, "right after seeding", "regenerate_clean_s")
                await scale.seed_shares(size * SHARES_PER_USER)
                if not rendered:
                    rendered = True
                    path = (
                        f"s3a://{BUCKET}/{home_key(HEAVY_OWNER, f'seed/d{HEAVY_SHARES - 1:05d}')}"
                    )
                    response = await client.post(
                        "/sharing/share",
                        json={"path": path, "with_users": [HEAVY_TARGET]},
                        headers=bearer(heavy),
                    )
                    response.raise_for_status()
                step.users, step.tenants, step.shares = (
                    len(scale.users),
                    len(scale.tenants),
                    scale.shares,
                )
                steps.append(step)
                await scale.measure(step, probe, heavy)
                log(table(steps))
        finally:
            await scale.store.close()
        return steps


def main() -> None:
    log(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    log(f"sizes {SIZES}; tenants ×{TENANTS_PER_USER}, shares ×{SHARES_PER_USER} per user")
    workdir = Path(tempfile.mkdtemp(prefix="mms-scale-"))
    with ExitStack() as cleanup:
        stack = PrivateStack(prefix="mms-scale-stack-", parent=STACK_DIR).start()
        log(f"private stack in {stack.base}")
        cleanup.callback(stack.stop)
        stub = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "kbase_stub.py"), "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        cleanup.callback(stub.wait, 10)
        cleanup.callback(stub.terminate)
        assert stub.stdout is not None
        kbase_url = stub.stdout.readline().strip().rsplit(" ", 1)[-1]
        env = {**os.environ, **stack.env, "KBASE_AUTH_URL": kbase_url, "LOG_LEVEL": "WARNING"}
        migrate(env)  # the schema at head before start, as on every restart (harness.migrate)
        pids: list[int] = []
        url = cleanup.enter_context(
            service_process(env, workdir / "service.log", on_start=pids.append)
        )
        service = Service(url=url, kbase_url=kbase_url, pid=pids[0])
        steps = asyncio.run(run(service, stack))
    log("\n" + table(steps))
    log(f"service log in {workdir}")


if __name__ == "__main__":
    main()
