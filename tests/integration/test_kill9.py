"""kill -9 of MinIO, PostgreSQL or Redis with 20+ changes in flight: records always win.

A service replica (a real process) runs on a private stack (``tests/support/private_stack``),
so killing a dependency never touches the session's shared stack. Workers drive shares,
unshares and tenant member moves; each worker owns one (path, grantee) or (tenant, user) pair
and runs its calls one after another, so whatever a 200 promised can be checked right away
with the grantee's issued keys. The contract under test (issue 7):

- a 2xx other than 202 is enforced when it is answered;
- a 202 carries ``"enforcement": "pending"`` and is enforced once the outbox drains;
- 503 otherwise (PostgreSQL down: nothing recorded);
- after the dependency returns, /health reports the outbox empty and, for every path and
  tenant, the records (get_path_access_info, tenant members) and S3 agree for every grantee.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.support.convergence import (
    can_read,
    can_write,
    outbox_pending,
    pair_works,
    path_readers,
    tenant_levels,
)
from tests.support.kbase import KBase, TestUser
from tests.support.private_stack import PrivateStack
from tests.support.processes import service_process
from tests.support.s3 import S3User

pytestmark = [
    pytest.mark.faults,
    pytest.mark.minio_only(
        reason="kills private MinIO, PostgreSQL and Redis processes (tests/support/private_stack.py"
        " starts MinIO only); SeaweedFS' own crash behaviour is not this service's"
    ),
]

BUCKET = "cdm-lake"
CONVERGE_SECONDS = 30.0
"""Generous deadline for records and the store to agree once the killed process is back."""
OUTAGE_SECONDS = 3.0
STEPS = 8
"""Calls per worker; with 28 workers that is 224 changes around each kill."""
BUSY_RETRIES = 8


def busy(response: httpx.Response) -> bool:
    """A "try again" answer: a lock held by another change (409: a credential lock, 20045,
    or a group pair whose membership another call is changing, 20046). Nothing was changed;
    clients retry."""
    return response.status_code == 409


@dataclass
class Actor:
    user: TestUser
    s3: S3User

    @property
    def name(self) -> str:
        return self.user.name


@dataclass
class Outcomes:
    """Every answer, and every broken promise found while the workers ran."""

    statuses: Counter[int] = field(default_factory=Counter)
    busy: Counter[str] = field(default_factory=Counter)
    broken: list[str] = field(default_factory=list)
    in_flight: int = 0
    answered: int = 0

    def record(self, what: str, response: httpx.Response | None) -> int:
        status = response.status_code if response is not None else 0
        self.statuses[status] += 1
        self.answered += 1
        if (
            status == 202
            and response is not None
            and response.json().get("enforcement") != ("pending")
        ):
            self.broken.append(f"{what}: 202 without enforcement=pending: {response.text}")
        if (status >= 500 and status != 503) or status == 0 or 400 <= status < 500:
            body = response.text if response is not None else "no answer"
            self.broken.append(f"{what}: unexpected {status}: {body[:300]}")
        return status


@pytest.fixture(scope="module")
def private_stack() -> Iterator[PrivateStack]:
    with PrivateStack(prefix="mms-kill9-") as stack:
        yield stack


@pytest.fixture(scope="module")
def replica(
    private_stack: PrivateStack, kbase: KBase, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = {
        **private_stack.env,
        "KBASE_AUTH_URL": kbase.url,
        "LOG_LEVEL": "INFO",
        "MINIO_TIMEOUT_SECONDS": "5",
        "CREDENTIAL_LOCK_WAIT_SECONDS": "10",
        "GROUP_LOCK_WAIT_SECONDS": "10",
    }
    log_dir: Path = tmp_path_factory.mktemp("kill9")
    with service_process(env, log_dir / "replica.log") as url:
        yield url


@pytest_asyncio.fixture
async def http(replica: str) -> AsyncIterator[httpx.AsyncClient]:
    # No client-side deadline worth the name: on a saturated CI machine a call waiting out a
    # lock and a restarted dependency can take over a minute, and that is not a wrong answer.
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=replica, timeout=300, limits=limits) as client:
        yield client


class World:
    """Owners with paths, grantees, tenants with candidate members, and users to rotate."""

    def __init__(self, http: httpx.AsyncClient, kbase: KBase, endpoint: str) -> None:
        self.http = http
        self.kbase = kbase
        self.endpoint = endpoint
        self.admin = kbase.add_user(admin=True)
        self.owners: list[Actor] = []
        self.paths: list[tuple[Actor, str]] = []  # (owner, path name under the home)
        self.grantees: list[Actor] = []
        self.tenants: list[str] = []
        self.members: list[Actor] = []
        self.rotators: list[TestUser] = []

    async def actor(self) -> Actor:
        user = self.kbase.add_user()
        response = await self.http.get("/credentials/", headers=user.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        return Actor(user, S3User(body["access_key"], body["secret_key"], self.endpoint))

    async def build(self) -> World:
        self.owners = [await self.actor() for _ in range(3)]
        for owner in self.owners:
            for n in range(3):
                path = f"p{n}"
                assert owner.s3.can_put(BUCKET, self.data_key(owner, path), b"data")
                self.paths.append((owner, path))
        self.grantees = [await self.actor() for _ in range(4)]
        seeder = await self.actor()
        for n in range(2):
            tenant = f"k{n}{random.getrandbits(40):010x}"
            response = await self.http.post(
                f"/management/groups/{tenant}", headers=self.admin.headers
            )
            assert response.status_code == 201, response.text
            response = await self.http.post(
                f"/tenants/{tenant}/members/{seeder.name}",
                params={"permission": "read_write"},
                headers=self.admin.headers,
            )
            assert response.status_code == 200, response.text
            assert seeder.s3.can_put(BUCKET, self.tenant_key(tenant), b"data")
            self.tenants.append(tenant)
        self.members = [await self.actor() for _ in range(4)]
        self.rotators = [self.kbase.add_user() for _ in range(2)]
        for user in self.rotators:
            response = await self.http.get("/credentials/", headers=user.headers)
            assert response.status_code == 200, response.text
        return self

    @staticmethod
    def data_key(owner: Actor, path: str) -> str:
        return f"users-general-warehouse/{owner.name}/{path}/data.txt"

    @staticmethod
    def path_url(owner: Actor, path: str) -> str:
        return f"s3a://{BUCKET}/users-general-warehouse/{owner.name}/{path}/"

    @staticmethod
    def tenant_key(tenant: str) -> str:
        return f"tenant-general-warehouse/{tenant}/data/seed.txt"

    # --- workers: one pair each, calls one after another -------------------------------------

    async def share_worker(
        self, out: Outcomes, owner: Actor, path: str, grantee: Actor, seed: int
    ) -> None:
        rng = random.Random(seed)
        for step in range(STEPS):
            sharing = step % 2 == 0
            level = rng.choice(["read", "write"])
            if sharing:
                body: dict[str, Any] = {
                    "path": self.path_url(owner, path),
                    "with_users": [grantee.name],
                    "permission": level,
                }
            else:
                body = {"path": self.path_url(owner, path), "from_users": [grantee.name]}
            what = f"{'share' if sharing else 'unshare'} {owner.name}/{path} -> {grantee.name}"
            status = out.record(
                what, await self._call("POST", self._share_url(sharing), out, owner.user, json=body)
            )
            if status == 200:
                readable = await can_read(grantee.s3, BUCKET, self.data_key(owner, path))
                if readable != sharing:
                    out.broken.append(f"{what}: answered 200 but readable={readable}")
                if sharing and level == "write":
                    probe = f"users-general-warehouse/{owner.name}/{path}/by-{grantee.name}.txt"
                    if not await can_write(grantee.s3, BUCKET, probe):
                        out.broken.append(f"{what} (write): answered 200 but not writable")
            await asyncio.sleep(rng.uniform(0.05, 0.4))

    @staticmethod
    def _share_url(sharing: bool) -> str:
        return "/sharing/share" if sharing else "/sharing/unshare"

    async def member_worker(self, out: Outcomes, tenant: str, member: Actor, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(STEPS):
            target = rng.choice(["read_write", "read_only", None])
            url = f"/tenants/{tenant}/members/{member.name}"
            what = f"member {member.name} of {tenant} -> {target}"
            if target is None:
                response = await self._call("DELETE", url, out, self.admin)
            else:
                response = await self._call(
                    "POST", url, out, self.admin, params={"permission": target}
                )
            status = out.record(what, response)
            if status in (200, 204):
                readable = await can_read(member.s3, BUCKET, self.tenant_key(tenant))
                probe = f"tenant-general-warehouse/{tenant}/data/by-{member.name}.txt"
                writable = await can_write(member.s3, BUCKET, probe)
                if (readable, writable) != (target is not None, target == "read_write"):
                    out.broken.append(
                        f"{what}: answered {status} but readable={readable} writable={writable}"
                    )
            await asyncio.sleep(rng.uniform(0.05, 0.4))

    async def rotate_worker(self, out: Outcomes, user: TestUser, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(STEPS):
            what = f"rotate {user.name}"
            response = await self._call("POST", "/credentials/rotate", out, user)
            if out.record(what, response) == 200 and response is not None:
                body = response.json()
                s3 = S3User(body["access_key"], body["secret_key"], self.endpoint)
                if not await pair_works(s3, BUCKET, f"users-general-warehouse/{user.name}/"):
                    out.broken.append(f"{what}: answered 200 with a pair S3 refuses")
            await asyncio.sleep(rng.uniform(0.05, 0.4))

    async def _call(
        self, method: str, url: str, out: Outcomes, caller: TestUser, **kwargs: Any
    ) -> httpx.Response | None:
        """One call as a client makes it: a "busy, try again" answer (which changed nothing)
        is retried a bounded number of times, and counted."""
        response: httpx.Response | None = None
        for attempt in range(BUSY_RETRIES):
            out.in_flight += 1
            try:
                response = await self.http.request(method, url, headers=caller.headers, **kwargs)
            except httpx.HTTPError:
                return None
            finally:
                out.in_flight -= 1
            if not busy(response):
                return response
            out.busy[f"{response.status_code}/{response.json().get('error')}"] += 1
            await asyncio.sleep(min(2.0, 0.2 * 2**attempt))
        return response

    # --- after the fault: records against the store ------------------------------------------

    async def disagreements(self) -> list[str]:
        """Every (path or tenant, grantee) whose records and S3 enforcement differ, plus every
        user whose cached pair S3 refuses, plus a non-empty outbox."""
        found: list[str] = []
        try:
            health = (await self.http.get("/health")).json()
        except (httpx.HTTPError, ValueError):
            return ["/health unanswered"]
        pending = outbox_pending(health)
        if pending != 0:
            found.append(f"/health outbox pending={pending}")
        for owner, path in self.paths:
            readers = await path_readers(self.http, owner.user.headers, self.path_url(owner, path))
            if readers is None:
                found.append(f"records of {owner.name}/{path} unanswered")
                continue
            for grantee in self.grantees:
                readable = await can_read(grantee.s3, BUCKET, self.data_key(owner, path))
                if readable != (grantee.name in readers):
                    found.append(
                        f"{owner.name}/{path} {grantee.name}: records "
                        f"{grantee.name in readers}, S3 {readable}"
                    )
        for tenant in self.tenants:
            levels = await tenant_levels(self.http, self.admin.headers, tenant)
            if levels is None:
                found.append(f"members of {tenant} unanswered")
                continue
            for member in self.members:
                readable = await can_read(member.s3, BUCKET, self.tenant_key(tenant))
                if readable != (member.name in levels):
                    found.append(
                        f"{tenant} {member.name}: records {levels.get(member.name)}, S3 {readable}"
                    )
        for user in [*(a.user for a in [*self.grantees, *self.members]), *self.rotators]:
            response = await self.http.get("/credentials/", headers=user.headers)
            if response.status_code != 200:
                found.append(f"credentials of {user.name}: {response.status_code}")
                continue
            body = response.json()
            s3 = S3User(body["access_key"], body["secret_key"], self.endpoint)
            if not await pair_works(s3, BUCKET, f"users-general-warehouse/{user.name}/"):
                found.append(f"cached pair of {user.name} refused by S3")
        return found


async def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.005)
    return condition()


@pytest.mark.parametrize("victim", ["minio", "postgres", "redis"])
async def test_kill9_with_changes_in_flight_converges(
    victim: str, private_stack: PrivateStack, http: httpx.AsyncClient, kbase: KBase
) -> None:
    world = await World(http, kbase, private_stack.minio.endpoint).build()
    out = Outcomes()
    seeds = itertools.count(1)
    pairs = list(itertools.product(world.paths, world.grantees))
    random.Random(victim).shuffle(pairs)
    workers = [
        world.share_worker(out, owner, path, grantee, next(seeds))
        for (owner, path), grantee in pairs[:18]
    ]
    workers += [
        world.member_worker(out, tenant, member, next(seeds))
        for tenant, member in itertools.product(world.tenants, world.members)
    ]
    workers += [world.rotate_worker(out, user, next(seeds)) for user in world.rotators]
    assert len(workers) >= 20
    tasks = [asyncio.ensure_future(w) for w in workers]

    # Kill once the first answers are back and at least 20 calls are in the server.
    assert await _wait_for(lambda: out.answered >= 1 and out.in_flight >= 20, 60), (
        f"never 20 calls in flight (in flight {out.in_flight}, answered {out.answered})"
    )
    in_flight_at_kill = out.in_flight
    process = private_stack.processes[victim]
    await asyncio.to_thread(process.kill9)
    await asyncio.sleep(OUTAGE_SECONDS)
    await asyncio.to_thread(process.restart)

    await asyncio.wait_for(asyncio.gather(*tasks), timeout=1800)  # a bound, not a deadline
    assert in_flight_at_kill >= 20
    assert not out.broken, "\n".join(out.broken)
    assert sum(out.statuses.values()) == len(workers) * STEPS

    deadline = time.monotonic() + CONVERGE_SECONDS
    left = await world.disagreements()
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        left = await world.disagreements()
    summary = f"answers {dict(out.statuses)}, busy retried {dict(out.busy)}"
    assert not left, f"after {victim} kill -9 ({summary}):\n" + "\n".join(left)
