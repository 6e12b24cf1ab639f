"""No lock's loss can make a stale holder win.

- Credentials: a rotation paused after setting its secret in the store loses its Redis lock
  (the key is deleted) while a second rotation runs; the first one's save fails its
  compare-and-set, and ``GET /credentials/`` then hands out a pair the store accepts.
- Policies: a renderer whose PostgreSQL connection (and so its advisory lock) is terminated
  while it is paused writes nothing more and answers 202; the other share still lands, and
  both grants end up enforced.
- A replica killed mid-render: its advisory lock dies with its connection and the in-process
  app's reconciler finishes the outbox row.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text

from minio_manager import checkpoints
from tests.support.api import BUCKET, home_key, home_url, issue
from tests.support.kbase import KBase, TestUser
from tests.support.processes import service_process
from tests.support.s3 import S3User
from tests.support.stack import connect
from tests.support.wait import eventually


class Pause:
    """Holds the first caller reaching ``checkpoint`` for ``subject`` until released."""

    def __init__(self, checkpoint: str, subject: str) -> None:
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        self._checkpoint, self._subject = checkpoint, subject
        self._used = False

    async def __call__(self, name: str, subject: str) -> None:
        if not self._used and name == self._checkpoint and subject == self._subject:
            self._used = True
            self.reached.set()
            await self.release.wait()


@pytest_asyncio.fixture
async def hooks() -> AsyncIterator[None]:
    yield
    checkpoints.install(None)


async def _outbox(services: Any, kind: str, name: str) -> Any:
    async with services.engine.connect() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT generation, applied_generation FROM policy_outbox"
                    " WHERE kind = :k AND name = :n"
                ),
                {"k": kind, "n": name},
            )
        ).first()


async def _settled(services: Any, kind: str, name: str) -> bool:
    row = await _outbox(services, kind, name)
    return row is not None and row.generation == row.applied_generation


async def test_rotation_that_lost_its_lock_cannot_leave_a_stale_pair(
    client: httpx.AsyncClient, kbase: KBase, services: Any, hooks: None
) -> None:
    someone = kbase.add_user()
    first = (await client.get("/credentials/", headers=someone.headers)).json()
    pause = Pause("credentials.store_set", someone.name)
    checkpoints.install(pause)
    stale = asyncio.create_task(client.post("/credentials/rotate", headers=someone.headers))
    await asyncio.wait_for(pause.reached.wait(), 60)
    # The first rotation has set its secret in the store; its lock disappears.
    assert await services.redis.delete(f"credential_lock:{someone.name}") == 1
    second = await client.post("/credentials/rotate", headers=someone.headers)
    assert second.status_code == 200, second.text
    pause.release.set()
    late = await stale
    assert late.status_code == 409, late.text
    assert late.json()["error"] == 20045
    assert "GET /credentials/" in late.json()["message"]

    now = await client.get("/credentials/", headers=someone.headers)
    assert now.status_code == 200
    pair = now.json()
    home = home_key(someone) + "/"
    assert S3User(pair["access_key"], pair["secret_key"]).can_list(BUCKET, home)
    assert not S3User(first["access_key"], first["secret_key"]).can_list(BUCKET, home)
    again = await client.get("/credentials/", headers=someone.headers)
    assert again.json()["secret_key"] == pair["secret_key"]


def _lock_holder_sql() -> str:
    return (
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid::bigint = (hashtext($1)::bigint & 4294967295)"
        " AND objid::bigint = (hashtext($2)::bigint & 4294967295)"
    )


async def test_renderer_losing_its_connection_writes_nothing_and_both_shares_land(
    client: httpx.AsyncClient,
    kbase: KBase,
    services: Any,
    service_env: dict[str, str],
    hooks: None,
) -> None:
    owner, target = kbase.add_user(), kbase.add_user()
    owner_s3, target_s3 = await issue(client, owner), await issue(client, target)
    keys = [home_key(owner, f"data/fence{n}/f.txt") for n in (1, 2)]
    for key in keys:
        assert owner_s3.can_put(BUCKET, key)
    pause = Pause("policy.rendered", f"user:{target.name}")
    checkpoints.install(pause)

    def share(n: int) -> Any:
        body = {"path": home_url(owner, f"data/fence{n}"), "with_users": [target.name]}
        return client.post("/sharing/share", json=body, headers=owner.headers)

    first = asyncio.create_task(share(1))
    await asyncio.wait_for(pause.reached.wait(), 60)
    second = asyncio.create_task(share(2))
    conn = await connect(service_env)
    try:
        holders = await conn.fetch(_lock_holder_sql(), "user", target.name)
        assert len(holders) == 1
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", holders[0]["pid"])
    finally:
        await conn.close()
    pause.release.set()
    answers = await asyncio.gather(first, second)
    assert answers[0].status_code == 202, answers[0].text
    assert answers[0].json()["enforcement"] == "pending"
    assert answers[1].status_code in (200, 202), answers[1].text
    assert await eventually(lambda: all(target_s3.can_get(BUCKET, k) for k in keys))
    assert await eventually(lambda: _settled(services, "user", target.name))


async def test_replica_killed_mid_render_is_finished_by_another_replica(
    client: httpx.AsyncClient,
    kbase: KBase,
    services: Any,
    service_env: dict[str, str],
    tmp_path: Path,
) -> None:
    owner, target = kbase.add_user(), kbase.add_user()
    owner_s3, target_s3 = await issue(client, owner), await issue(client, target)
    key = home_key(owner, "data/killed/f.txt")
    assert owner_s3.can_put(BUCKET, key)
    marker = tmp_path / "paused"
    env = {
        **service_env,
        "MMS_CHECKPOINT_PAUSE": "policy.rendered",
        "MMS_CHECKPOINT_MARKER": str(marker),
    }
    pids: list[int] = []
    # This process's reconciler stays off until the replica is dead, so only the replica can
    # have touched the row; started again, it must pick up what the dead replica left.
    await services.reconciler.stop()
    try:
        with service_process(env, tmp_path / "replica.log", on_start=pids.append) as url:
            await _share_and_kill(url, owner, target, target_s3, key, marker, services, pids)
    finally:
        services.reconciler.start()
    assert await eventually(lambda: target_s3.can_get(BUCKET, key))
    assert await eventually(lambda: _settled(services, "user", target.name))


async def _share_and_kill(
    url: str,
    owner: TestUser,
    target: TestUser,
    target_s3: S3User,
    key: str,
    marker: Path,
    services: Any,
    pids: list[int],
) -> None:
    body = {"path": home_url(owner, "data/killed"), "with_users": [target.name]}
    request = asyncio.create_task(
        asyncio.to_thread(_post_quietly, url + "/sharing/share", body, owner)
    )
    subject = f"user:{target.name}"
    assert await eventually(lambda: marker.exists() and subject in marker.read_text().splitlines())
    # Paused holding the advisory lock: committed, not applied, nobody else can apply it.
    row = await _outbox(services, "user", target.name)
    assert row is not None and row.generation > row.applied_generation
    assert not target_s3.can_get(BUCKET, key)
    os.kill(pids[0], signal.SIGKILL)
    await request


def _post_quietly(url: str, body: dict[str, Any], caller: TestUser) -> None:
    """The replica never answers (it is killed while paused)."""
    with pytest.raises(httpx.HTTPError):
        httpx.post(url, json=body, headers=caller.headers, timeout=120)
