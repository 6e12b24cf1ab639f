"""Taking over a deployment of the reference service without losing a grant.

The test builds a reference deployment from the facts of REFERENCE_STATE.md: a database made
by the reference's migrations (stamped ``003``, secrets of 8 characters encrypted with
pgcrypto) and MinIO users, groups and policies with the reference's names and documents —
shares to users and groups, a public path with write, a user with more than 40 shares, a
wildcard grant, a grant outside any home, a foreign policy and shadow leftovers. It runs
``mms-import`` (dry run, then ``--apply``), starts the service on that database and store, and
checks with the users' own keys that every grant still works or was narrowed as reported.
All names are random: the stack's MinIO is shared by test runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import string
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio

from minio_manager.config import Settings
from minio_manager.main import create_app
from minio_manager.objectstore.minio import MinioStore
from minio_manager.objectstore.port import StoreObject
from tests.support.kbase import KBase, TestUser
from tests.support.reference import (
    ReferencePolicy,
    create_reference_schema,
    group_policy,
    insert_credentials,
    user_home,
    user_system,
)
from tests.support.s3 import S3User
from tests.support.stack import REPO, connect, drop_database, recreate_database

pytestmark = pytest.mark.minio_only(
    reason="the reference service ran on MinIO only: its users are MinIO access keys with the"
    " secrets it chose, which an AWS-IAM-API store cannot take (it issues its own key pairs)"
)

B = "cdm-lake"
REF_DB = f"mms_import_ref_{os.getpid()}"
HEAVY_SHARES = 45


def _short_secret() -> str:
    """The reference's 8-character secrets."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(8))


@dataclass
class Reference:
    """Names and keys of the reference deployment built for one test run."""

    prefix: str
    env: dict[str, str]
    admin_env: dict[str, str]
    secrets: dict[str, str] = field(default_factory=dict)

    def user(self, role: str) -> str:
        return f"{self.prefix}{role}"

    @property
    def team(self) -> str:
        return f"{self.prefix}team"

    @property
    def alice(self) -> str:
        return self.user("alice")

    def home(self, rest: str) -> str:
        return f"users-general-warehouse/{self.alice}/{rest}"

    def s3(self, role: str) -> S3User:
        return S3User(self.user(role), self.secrets[self.user(role)])


def _prefix() -> str:
    return f"imp{uuid.uuid4().hex[:6]}"


async def _attach_public_write(store: MinioStore, path: str) -> None:
    """Add a write grant to ``group-policy-globalusers`` the way the reference's make-public
    did (it granted write to everyone), keeping whatever the shared store already holds."""
    name = "group-policy-globalusers"
    await store.add_group_members("globalusers", [])
    current = await store.get_policy(name) or group_policy("globalusers").document
    arn = f"arn:aws:s3:::{B}/{path}"
    current["Statement"] += [
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": [f"arn:aws:s3:::{B}"],
            "Condition": {"StringLike": {"s3:prefix": [path, f"{path}/*"]}},
        },
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": [arn, f"{arn}/*"]},
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": [arn, f"{arn}/*"]},
        {"Effect": "Allow", "Action": "s3:DeleteObject", "Resource": [f"{arn}/*"]},
    ]
    await store.put_policy(name, current)
    group = await store.get_group("globalusers")
    attached = set(group.policies if group else ()) | {name}
    await store.set_group_policies("globalusers", sorted(attached))


async def _build_reference(ref: Reference) -> None:
    env = ref.env
    key = env["MMS_DB_ENCRYPTION_KEY"]
    roles = ["alice", "bob", "carol", "heavy"]
    ref.secrets = {ref.user(r): _short_secret() for r in roles}

    await recreate_database(ref.admin_env, REF_DB)
    conn = await connect(env, REF_DB)
    try:
        await create_reference_schema(conn, "003")
        for user, secret in ref.secrets.items():
            await insert_credentials(conn, user, secret, key)
        await conn.execute(
            "INSERT INTO tenant_metadata (tenant_name, display_name, created_by)"
            " VALUES ($1, $1, 'backfill')",
            ref.team,
        )
        await conn.execute(
            "INSERT INTO tenant_stewards (tenant_name, username, assigned_by)"
            " VALUES ($1, $2, 'admin')",
            ref.team,
            ref.alice,
        )
    finally:
        await conn.close()

    store = MinioStore(env["MINIO_ENDPOINT"], env["MINIO_ROOT_USER"], env["MINIO_ROOT_PASSWORD"])
    try:
        await store.ensure_buckets([B, "cdm-spark-job-logs", "cts"])
        for user, secret in ref.secrets.items():
            await store.set_user(user, secret)
        await store.set_user(ref.user("svc"), _short_secret())  # not one the reference made
        # A reference user whose credentials row is gone: known by its home policy only.
        await store.set_user(ref.user("dana"), _short_secret())
        await store.put_policy(
            f"user-home-policy-{ref.user('dana')}", user_home(ref.user("dana")).document
        )
        await store.set_user_policies(ref.user("dana"), [f"user-home-policy-{ref.user('dana')}"])
        bob, carol, heavy = ref.user("bob"), ref.user("carol"), ref.user("heavy")
        await store.add_group_members("globalusers", list(ref.secrets))
        await store.add_group_members(ref.team, [bob])
        await store.add_group_members(f"{ref.team}ro", [carol])

        shadow_bob = f"user-home-policy-{bob}-shadow-{secrets.token_hex(4)}"
        shadow_carol = f"user-home-policy-{carol}-shadow-{secrets.token_hex(4)}"
        custom = f"{ref.prefix}-custom"
        documents: dict[str, ReferencePolicy] = {
            f"user-home-policy-{ref.alice}": user_home(ref.alice),
            f"user-home-policy-{bob}": user_home(bob)
            .grant(B, ref.home("data/exp1"), "read")
            .grant(B, f"users-sql-warehouse/{ref.alice}/u_{ref.alice}__db1", "write")
            .grant(B, ref.home("data/wild*"), "read")
            .grant(B, f"tenant-general-warehouse/{ref.prefix}other/x", "read"),
            shadow_bob: user_home(bob).grant(B, ref.home("data/shadowed"), "read"),
            custom: ReferencePolicy().grant(B, f"{ref.prefix}-custom-area", "read"),
            f"user-home-policy-{carol}": user_home(carol).grant(B, ref.home("data/exp2"), "write"),
            shadow_carol: user_home(carol).grant(B, ref.home("data/ghost"), "read"),
            f"user-home-policy-{heavy}": user_home(heavy),
            f"group-policy-{ref.team}": group_policy(ref.team).grant(
                B, ref.home("data/teamshare"), "write"
            ),
            f"group-policy-{ref.team}ro": group_policy(ref.team, read_only=True).grant(
                B, ref.home("data/roshare"), "read"
            ),
        }
        for n in range(HEAVY_SHARES):
            documents[f"user-home-policy-{heavy}"].grant(B, ref.home(f"data/h{n}"), "read")
        for user in ref.secrets:
            documents[f"user-system-policy-{user}"] = user_system(user)
        for name, policy in documents.items():
            await store.put_policy(name, policy.document)
        for user in ref.secrets:
            attached = [f"user-home-policy-{user}", f"user-system-policy-{user}"]
            if user == bob:
                attached += [shadow_bob, custom]
            await store.set_user_policies(user, attached)
        await store.set_group_policies(ref.team, [f"group-policy-{ref.team}"])
        await store.set_group_policies(f"{ref.team}ro", [f"group-policy-{ref.team}ro"])
        await _attach_public_write(store, ref.home("data/public"))

        data = [
            "data/exp1", "data/exp2", "data/wild1", "data/shadowed", "data/ghost",
            "data/teamshare", "data/roshare", "data/public", "data/h0",
            f"data/h{HEAVY_SHARES - 1}",
        ]  # fmt: skip
        objects = [StoreObject(B, ref.home(f"{d}/f.txt"), b"data") for d in data]
        objects.append(StoreObject(B, f"tenant-general-warehouse/{ref.prefix}other/x/f.txt"))
        objects.append(
            StoreObject(B, f"users-sql-warehouse/{ref.alice}/u_{ref.alice}__db1/t.parquet")
        )
        await store.put_objects(objects)
    finally:
        await store.close()


def _without(document: dict[str, Any], marker: str) -> dict[str, Any]:
    """``document`` minus every resource and listing prefix that contains ``marker``."""
    kept = []
    for statement in document["Statement"]:
        resources = [r for r in statement["Resource"] if marker not in r]
        for values in statement.get("Condition", {}).get("StringLike", {}).values():
            values[:] = [v for v in values if marker not in v]
        if resources:
            kept.append({**statement, "Resource": resources})
    return {**document, "Statement": kept}


async def _cleanup_store(ref: Reference) -> None:
    env = ref.env
    store = MinioStore(env["MINIO_ENDPOINT"], env["MINIO_ROOT_USER"], env["MINIO_ROOT_PASSWORD"])
    try:
        # The public path lives in the shared globalusers policy: take it out again.
        group = await store.get_group("globalusers")
        for name in group.policies if group else ():
            document = await store.get_policy(name)
            if document is not None and ref.alice in json.dumps(document):
                await store.put_policy(name, _without(document, f"/{ref.alice}/"))
        users = [*ref.secrets, ref.user("svc"), ref.user("dana")]
        await store.remove_group_members("globalusers", users)
        for group in (ref.team, f"{ref.team}ro"):
            await store.remove_group_members(group, users)
            await store.set_group_policies(group, [])
            await store.delete_group(group)
        for user in users:
            await store.delete_user(user)
        for policy in await store.list_policies():
            if ref.prefix in policy:
                await store.delete_policy(policy)
        await store.delete_prefix(B, f"users-general-warehouse/{ref.alice}/")
        await store.delete_prefix(B, f"tenant-general-warehouse/{ref.prefix}other/")
        await store.delete_prefix(B, f"users-sql-warehouse/{ref.alice}/")
    finally:
        await store.close()


@pytest_asyncio.fixture(scope="module")
async def reference(stack: dict[str, str], service_env: dict[str, str]) -> AsyncIterator[Reference]:
    ref = Reference(_prefix(), {**service_env, "MMS_DB_NAME": REF_DB}, stack)
    await _build_reference(ref)
    try:
        yield ref
    finally:
        await _cleanup_store(ref)
        await drop_database(ref.admin_env, REF_DB)


async def _mms_import(ref: Reference, *flags: str) -> dict[str, Any]:
    """Run the ``mms-import`` console entry point as a process, as an operator would."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "minio_manager.takeover.cli", "--json",
        "--only-prefix", ref.prefix, *flags,
        cwd=REPO, env={**os.environ, **ref.env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    for secret in ref.secrets.values():
        assert secret not in out.decode() and secret not in err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


def _mine(ref: Reference, items: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    """Shares of this run (owned by its alice): (target type, target, path, level)."""
    return {
        (i["target_type"], i["target_name"], i["path"], i["level"])
        for i in items
        if i["owner"] == ref.alice
    }


def _expected(ref: Reference) -> set[tuple[str, str, str, str]]:
    url = f"s3a://{B}/"
    home = url + ref.home("")
    bob, carol, heavy = ref.user("bob"), ref.user("carol"), ref.user("heavy")
    shares = {
        ("user", bob, home + "data/exp1/", "read"),
        ("user", bob, f"{url}users-sql-warehouse/{ref.alice}/u_{ref.alice}__db1/", "write"),
        ("user", bob, home + "data/shadowed/", "read"),
        ("user", carol, home + "data/exp2/", "write"),
        ("group", ref.team, home + "data/teamshare/", "write"),
        ("group", f"{ref.team}ro", home + "data/roshare/", "read"),
        ("group", "globalusers", home + "data/public/", "read"),
    }
    shares |= {("user", heavy, home + f"data/h{n}/", "read") for n in range(HEAVY_SHARES)}
    return shares


@pytest_asyncio.fixture(scope="module")
async def taken_over(
    reference: Reference, kbase: KBase
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, TestUser], Any]]:
    """The service running on the reference's database after a dry run and an --apply."""
    dry = await _mms_import(reference)
    assert dry["mode"] == "dry-run"
    conn = await connect(reference.env, REF_DB)
    try:  # a dry run writes nothing, not even the migration
        assert await conn.fetchval("SELECT version_num FROM alembic_version_mms") == "003"
    finally:
        await conn.close()
    reference.env["DRY_RUN_REPORT"] = json.dumps(dry)
    applied = await _mms_import(reference, "--apply")
    reference.env["APPLY_REPORT"] = json.dumps(applied)

    settings = Settings(
        mms_db_name=REF_DB,
        redis_url=reference.env["REDIS_URL"],
        kbase_auth_url=kbase.url,
    )
    app = create_app(settings)
    users = {name: kbase.add_user(name) for name in [*reference.secrets, reference.user("svc")]}
    users["admin"] = kbase.add_user(admin=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://taken-over", timeout=120
        ) as client:
            yield client, users, app.state.services


async def test_dry_run_reports_everything_and_writes_nothing(
    reference: Reference, taken_over: Any
) -> None:
    dry = json.loads(reference.env["DRY_RUN_REPORT"])
    assert _mine(reference, dry["shares"]["new_items"]) == _expected(reference)
    bob, carol = reference.user("bob"), reference.user("carol")
    kinds = {(f["target_name"], f["kind"]) for f in dry["narrowings"]}
    assert {
        (bob, "wildcard"),  # the wildcard grant, and the parent read that came with it
        (bob, "outside_home"),
        (bob, "foreign_policy"),
        ("globalusers", "public_write_to_read"),
    } <= kinds
    public = [f for f in dry["narrowings"] if f["kind"] == "public_write_to_read"]
    assert any(reference.home("data/public") in f["detail"] for f in public)
    shadows = {s["name"].rsplit("-shadow-", 1)[0]: s for s in dry["shadow_policies"]}
    assert shadows[f"user-home-policy-{bob}"]["attached_to"] == [f"user:{bob}"]
    assert shadows[f"user-home-policy-{carol}"]["attached_to"] == []
    assert dry["managed_users"]["store_users_left_unmanaged"] == [reference.user("svc")]
    assert dry["secrets"]["action"] == "would keep"
    assert set(dry["secrets"]["short_users"]) == set(reference.secrets)


async def test_apply_records_shares_and_keeps_secrets(
    reference: Reference, taken_over: Any
) -> None:
    applied = json.loads(reference.env["APPLY_REPORT"])
    assert applied["mode"] == "apply"
    assert _mine(reference, applied["shares"]["new_items"]) == _expected(reference)
    assert applied["rendered"]["errors"] == []
    assert all(s["deleted"] for s in applied["shadow_policies"])
    assert applied["secrets"]["action"] == "kept"
    managed = applied["managed_users"]
    assert managed["store_users_left_unmanaged"] == [reference.user("svc")]
    if managed["table_present"]:
        # Credential rows became managed with the migration; the import adds the reference
        # users known by their home policy only.
        assert managed["newly_marked"] == [reference.user("dana")]
        conn = await connect(reference.env, REF_DB)
        try:
            rows = await conn.fetch("SELECT username FROM managed_users")
        finally:
            await conn.close()
        names = {r["username"] for r in rows}
        assert {*reference.secrets, reference.user("dana")} <= names
        assert reference.user("svc") not in names


async def test_logins_return_the_reference_keys(reference: Reference, taken_over: Any) -> None:
    client, users, _ = taken_over
    for name, secret in reference.secrets.items():
        response = await client.get("/credentials/", headers=users[name].headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["access_key"] == body["s3_access_key"] == name
        assert body["secret_key"] == body["s3_secret_key"] == secret
    assert reference.s3("alice").can_put(B, reference.home("data/new.txt"))


async def test_every_grant_still_works_or_is_narrowed_as_reported(
    reference: Reference, taken_over: Any
) -> None:
    ref = reference
    bob, carol, heavy = ref.s3("bob"), ref.s3("carol"), ref.s3("heavy")
    f = "f.txt"
    # user shares, at their levels
    assert bob.can_get(B, ref.home(f"data/exp1/{f}"))
    assert not bob.can_put(B, ref.home(f"data/exp1/{f}"))
    db = f"users-sql-warehouse/{ref.alice}/u_{ref.alice}__db1"
    assert bob.can_get(B, f"{db}/t.parquet") and bob.can_put(B, f"{db}/new.parquet")
    assert carol.can_put(B, ref.home(f"data/exp2/{f}"))
    # the grant only an attached shadow held is kept; an unattached shadow granted nothing
    assert bob.can_get(B, ref.home(f"data/shadowed/{f}"))
    assert not carol.can_get(B, ref.home(f"data/ghost/{f}"))
    # more than 40 shares on one user
    assert heavy.can_get(B, ref.home(f"data/h0/{f}"))
    assert heavy.can_get(B, ref.home(f"data/h{HEAVY_SHARES - 1}/{f}"))
    # group and read-only twin
    assert bob.can_put(B, ref.home(f"data/teamshare/{f}"))
    assert carol.can_get(B, ref.home(f"data/roshare/{f}"))
    assert not carol.can_put(B, ref.home(f"data/roshare/{f}"))
    # public: still readable by everyone, no longer writable (reported narrowing)
    assert carol.can_get(B, ref.home(f"data/public/{f}"))
    assert not carol.can_put(B, ref.home(f"data/public/{f}"))
    # wildcard and out-of-home grants were reported, not imported
    assert not bob.can_get(B, ref.home(f"data/wild1/{f}"))
    assert not bob.can_get(B, f"tenant-general-warehouse/{ref.prefix}other/x/{f}")
    # templates
    assert carol.can_put(B, f"users-general-warehouse/{ref.user('carol')}/mine.txt")


async def test_second_import_changes_nothing(reference: Reference, taken_over: Any) -> None:
    again = await _mms_import(reference, "--apply")
    assert again["shares"]["new"] == 0
    assert again["shares"]["level_conflicts"] == []
    assert _mine(reference, again["shares"]["items"]) == _expected(reference)
    assert again["narrowings"] == []
    assert again["shadow_policies"] == []
    assert again["managed_users"]["newly_marked"] == []


async def test_rotating_short_secrets(reference: Reference, taken_over: Any) -> None:
    client, users, _ = taken_over
    rotated = await _mms_import(reference, "--apply", "--rotate-short-secrets")
    assert rotated["secrets"]["action"] == "rotated"
    assert set(rotated["secrets"]["rotated"]) == set(reference.secrets)
    carol = reference.user("carol")
    body = (await client.get("/credentials/", headers=users[carol].headers)).json()
    assert len(body["secret_key"]) == 40
    key = f"users-general-warehouse/{carol}/after-rotation.txt"
    assert S3User(carol, body["secret_key"]).can_put(B, key)
    assert not reference.s3("carol").can_put(B, key)


@pytest.mark.parametrize("flag", ["--apply"])
def test_import_help_names_the_flags(flag: str) -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "minio_manager.takeover.cli", "--help"],
        capture_output=True, text=True, check=True, cwd=REPO,
    ).stdout  # fmt: skip
    assert flag in out and "--rotate-short-secrets" in out


async def test_wrong_encryption_key_is_a_clear_failure(reference: Reference) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "minio_manager.takeover.cli", "--only-prefix", reference.prefix,
        cwd=REPO, env={**os.environ, **reference.env, "MMS_DB_ENCRYPTION_KEY": "not-the-key"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 1
    assert b"MMS_DB_ENCRYPTION_KEY" in err and b"not-the-key" not in out + err
