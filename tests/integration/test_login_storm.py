"""Issue 12: a JupyterHub login storm on one fresh replica must not fail anyone.

300 brand-new users call ``GET /credentials/`` at the same instant against a real service
process (its own pools, as in production) on the real stack. Everyone must get 200 — they may
queue, no timing is asserted — and every issued pair must work at S3: all 300 write and read
back an object in their own home through a signed request (cheap, one pooled client), and a
sample of 10 is checked through boto3 as well (an independent S3 client), including that a
user cannot read a neighbour's home.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from pathlib import Path

import httpx

from tests.support.kbase import KBase
from tests.support.processes import service_process
from tests.support.s3 import S3User, failing_pairs
from tests.support.stack import store_kind, store_var

BUCKET = "cdm-lake"
# SeaweedFS 4.48 serialises IAM writes and each user creation costs more as its IAM store grows
# (docs/backends.md, "SeaweedFS: IAM writes slow down…"): 300 new users there take hours, a
# store limit, not the service's. The storm is then 30 users: still all at once, on one replica.
STORM = 300 if store_kind() == "minio" else 30


async def test_300_simultaneous_first_logins_all_succeed_with_working_pairs(
    app: object, service_env: dict[str, str], kbase: KBase, tmp_path: Path
) -> None:
    users = [kbase.add_user() for _ in range(STORM)]
    env = {**service_env, "LOG_LEVEL": "WARNING"}
    with service_process(env, tmp_path / "storm.log") as url:
        limits = httpx.Limits(max_connections=STORM, max_keepalive_connections=STORM)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=600) as client:
            start = asyncio.Event()

            async def login(headers: dict[str, str]) -> httpx.Response:
                await start.wait()
                return await client.get("/credentials/", headers=headers)

            tasks = [asyncio.create_task(login(u.headers)) for u in users]
            await asyncio.sleep(0.2)
            start.set()
            responses = await asyncio.gather(*tasks)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: STORM}, {
        s: [r.text for r in responses if r.status_code == s][:3] for s in statuses
    }
    pairs = {r.json()["username"]: r.json() for r in responses}
    assert set(pairs) == {u.name for u in users}
    assert len({p["secret_key"] for p in pairs.values()}) == STORM

    homes = {
        name: (p["access_key"], p["secret_key"], f"users-general-warehouse/{name}")
        for name, p in pairs.items()
    }
    assert await failing_pairs(store_var(os.environ, "OBJECT_STORE_ENDPOINT"), BUCKET, homes) == []

    sample = random.Random(12).sample(sorted(pairs), 10)
    for name, neighbour in zip(sample, sample[1:] + sample[:1], strict=True):
        s3 = S3User(pairs[name]["access_key"], pairs[name]["secret_key"])
        assert s3.can_put(BUCKET, f"users-general-warehouse/{name}/data/storm.txt")
        assert not s3.can_get(BUCKET, f"users-general-warehouse/{neighbour}/storm-check.txt")
