"""Where users meet the service: a JupyterHub spawn and Spark on s3a, with the real programs.

One hub, four users: alice (tenant read-write member, reader of a share), carol (read-only
member), dave (no member), eve (a token KBase rejects by spawn time), plus bob, who shares a
path with alice. Servers are started through the hub's REST API; what the hook set is read from
the single-user server's own process; Spark runs with those variables and nothing else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.governance import group_name
from tests.support.kbase import KBase, TestUser
from tests.support.s3 import S3User

from e2e.harness import Hub, SparkRun, read_environ, run_spark, secrets_on_command_lines
from minio_manager_client import Credentials, MinioManagerClient, Workspace
from minio_manager_client.jupyterhub import spawn_environment

BUCKET = "cdm-lake"
# The names the hook sets, from the hook's own function (the values here are placeholders).
HOOK_NAMES = frozenset(
    spawn_environment(
        Credentials("x", "x", "y"),
        Workspace("x", "x", ("s3a://b/h/", "s3a://b/w/"), (), (), (), 0, ()),
        endpoint="http://127.0.0.1:1",
    )
)


@dataclass
class Spawned:
    user: TestUser
    pid: int
    env: dict[str, str]
    start_seconds: float

    @property
    def hook_env(self) -> dict[str, str]:
        return {k: v for k, v in self.env.items() if k in HOOK_NAMES}

    @property
    def secret(self) -> str:
        return self.env["AWS_SECRET_ACCESS_KEY"]

    @property
    def home(self) -> str:
        return self.env["MMS_USER_HOME"]


@dataclass
class World:
    users: dict[str, TestUser]
    spawned: dict[str, Spawned]
    group: str
    shared: str


@pytest.fixture(scope="module")
def world(hub: Hub, kbase: KBase, service_url: str) -> Any:
    users = {n: kbase.add_user() for n in ("alice", "bob", "carol", "dave")}
    admin = kbase.add_user(admin=True)
    spawned: dict[str, Spawned] = {}
    for role in ("alice", "carol", "dave"):
        user = users[role]
        hub.login(user.name, user.token).close()  # the authenticator stores the token
        started = time.monotonic()
        answer = hub.start_server(user.name)
        assert answer.status_code in (201, 202), answer.text
        pid = hub.server_pid(user.name)
        spawned[role] = Spawned(user, pid, read_environ(pid), time.monotonic() - started)

    group = group_name("e2e")
    with MinioManagerClient(service_url, admin.token) as mms:
        mms.request("POST", f"/management/groups/{group}")
        mms.request(
            "POST",
            f"/tenants/{group}/members/{users['alice'].name}",
            params={"permission": "read_write"},
        )
        mms.request(
            "POST",
            f"/tenants/{group}/members/{users['carol'].name}",
            params={"permission": "read_only"},
        )

    # bob puts a small CSV under his home and shares its folder read-only with alice.
    bob = users["bob"]
    with MinioManagerClient(service_url, bob.token) as mms:
        creds = mms.get_credentials()
        key = f"users-general-warehouse/{bob.name}/shared/ds1/part-0.csv"
        S3User(creds.access_key, creds.secret_key).client.put_object(
            Bucket=BUCKET, Key=key, Body=b"n\n1\n2\n3\n"
        )
        shared = f"s3a://{BUCKET}/users-general-warehouse/{bob.name}/shared/ds1/"
        mms.request(
            "POST",
            "/sharing/share",
            json={"path": shared, "with_users": [users["alice"].name], "permission": "read"},
        )
    yield World(users, spawned, group, shared)
    with MinioManagerClient(service_url, admin.token) as mms:
        mms.request("DELETE", f"/management/groups/{group}")
    for s in spawned.values():
        hub.stop_server(s.user.name)


def test_spawn_puts_working_keys_into_the_servers_process(world: World, service_url: str) -> None:
    for role, spawned in world.spawned.items():
        env = spawned.env
        assert env.keys() >= HOOK_NAMES, f"{role}: missing {HOOK_NAMES - env.keys()}"
        assert env["JUPYTERHUB_USER"] == spawned.user.name  # it is that user's server
        assert env["AWS_ACCESS_KEY_ID"] == env["MINIO_ACCESS_KEY"] == spawned.user.name
        assert env["AWS_SECRET_ACCESS_KEY"] == env["MINIO_SECRET_KEY"]
        assert (
            env["MMS_USER_HOME"] == f"s3a://{BUCKET}/users-general-warehouse/{spawned.user.name}/"
        )
        print(f"{role}: server started in {spawned.start_seconds:.1f} s")

    alice = world.spawned["alice"]
    with MinioManagerClient(service_url, alice.user.token) as mms:
        assert mms.get_credentials().secret_key == alice.secret  # the pair the service holds
    s3 = S3User(alice.env["AWS_ACCESS_KEY_ID"], alice.secret, alice.env["AWS_ENDPOINT_URL"])
    key = alice.home.removeprefix(f"s3a://{BUCKET}/") + "notebooks/hello.txt"
    assert s3.can_put(BUCKET, key)
    assert s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"x"
    assert not s3.can_get(BUCKET, f"users-general-warehouse/{world.users['bob'].name}/README.txt")


def test_rejected_token_gets_a_clear_message(hub: Hub, kbase: KBase) -> None:
    eve = kbase.add_user(cachefor_ms=1)
    session = hub.login(eve.name, eve.token)  # accepted at login…
    kbase.expire(eve.token)  # …revoked before the spawn
    answer = hub.api("POST", f"/users/{eve.name}/server")
    assert answer.status_code == 403, answer.text
    message = answer.json()["message"]
    assert "log in again" in message and "KBase" in message
    # What the user's browser shows on the spawn page.
    page = session.get(f"/hub/spawn-pending/{eve.name}")
    assert "log in again" in page.text, page.text[-2000:]
    session.close()


def test_no_secret_in_hub_log_or_any_command_line(hub: Hub, world: World, workdir: Path) -> None:
    secrets = [s.secret for s in world.spawned.values()]
    tokens = [u.token for u in world.users.values()]
    assert secrets_on_command_lines(secrets + tokens) == []
    for log in (hub.log, workdir / "service.log"):
        text = log.read_text(errors="replace")
        assert not [s for s in secrets if s in text], f"secret in {log.name}"
        assert not [t for t in tokens if t in text], f"KBase token in {log.name}"
    assert "object-store credentials set for" in hub.log.read_text()


@pytest.fixture(scope="module")
def spark_runs(world: World, workdir: Path) -> dict[str, SparkRun]:
    """One Spark session per user, in order: alice writes what carol and dave then try."""
    alice = world.spawned["alice"]
    g = world.group
    db = f"{g}_db"
    location = f"s3a://{BUCKET}/tenant-sql-warehouse/{g}/{db}.db"
    watch = [s.secret for s in world.spawned.values()]
    runs = {
        "alice": [
            {"op": "write", "path": alice.home + "data/numbers", "rows": 1000},
            {"op": "read", "path": alice.home + "data/numbers"},
            {"op": "table", "database": db, "location": location, "table": "t1", "rows": 500},
            {"op": "read_csv", "path": world.shared},
            {"op": "write", "path": world.shared + "alice_was_here", "rows": 10},
            # No location: under spark.sql.warehouse.dir, the SQL home the hook set.
            {"op": "table", "database": f"u_{alice.user.name}__demo", "table": "t1", "rows": 10},
        ],
        "carol": [
            {"op": "read", "path": f"{location}/t1"},
            {"op": "table", "database": db, "location": location, "table": "t2", "rows": 10},
        ],
        "dave": [
            {"op": "read", "path": f"{location}/t1"},
            {"op": "read_csv", "path": world.shared},
        ],
    }
    results: dict[str, SparkRun] = {}
    for role, steps in runs.items():
        spawned = world.spawned[role]
        results[role] = run_spark(steps, spawned.hook_env, workdir / f"spark-{role}", watch)
        print(f"spark {role}: {results[role].seconds:.1f} s")
    return results


def test_spark_home_roundtrip_tenant_table_and_read_only_share(
    spark_runs: dict[str, SparkRun],
) -> None:
    run = spark_runs["alice"]
    write, read, table, shared_read, shared_write, own_db = (run.step(i) for i in range(6))
    assert write["ok"], write
    assert read["ok"] and read["rows"] == 1000, read
    assert table["ok"] and table["rows"] == 500, table
    assert shared_read["ok"] and shared_read["rows"] == 3, shared_read
    assert not shared_write["ok"] and shared_write["denied"], shared_write
    assert own_db["ok"] and own_db["rows"] == 10, own_db
    assert run.secrets_seen_on_command_lines == []


def test_spark_read_only_member_reads_but_cannot_write(spark_runs: dict[str, SparkRun]) -> None:
    run = spark_runs["carol"]
    read, write = run.step(0), run.step(1)
    assert read["ok"] and read["rows"] == 500, read
    assert not write["ok"] and write["denied"], write
    assert run.secrets_seen_on_command_lines == []


def test_spark_non_member_cannot_read(spark_runs: dict[str, SparkRun]) -> None:
    run = spark_runs["dave"]
    tenant_read, shared_read = run.step(0), run.step(1)
    assert not tenant_read["ok"] and tenant_read["denied"], tenant_read
    assert not shared_read["ok"] and shared_read["denied"], shared_read
    assert run.secrets_seen_on_command_lines == []
