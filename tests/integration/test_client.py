"""The client package against the real service (in-process app over ASGI, and one process).

The same calls the JupyterHub hook makes, with the answers checked where they matter: the keys
work at the store, a rotation kills the old secret, and the envelope arrives as the exception
for its status.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from minio_manager_client import (
    AsyncMinioManagerClient,
    AuthenticationError,
    ForbiddenError,
    MinioManagerClient,
    NotFoundError,
    RetryPolicy,
)
from minio_manager_client.jupyterhub import make_pre_spawn_hook
from tests.support.governance import BUCKET, add_member, create_group, delete_created_groups
from tests.support.kbase import KBase
from tests.support.processes import service_process
from tests.support.s3 import S3User
from tests.support.spawner import FakeSpawner
from tests.support.stack import store_var
from tests.support.store import store_access_key

ONCE = RetryPolicy(attempts=1)


@pytest_asyncio.fixture(scope="module", autouse=True)
async def _delete_groups_afterwards(client: httpx.AsyncClient, kbase: KBase) -> AsyncIterator[None]:
    yield
    await delete_created_groups(client, kbase.add_user(admin=True))


def mms(app: object, token: str) -> AsyncMinioManagerClient:
    return AsyncMinioManagerClient(
        "http://service",
        token,
        transport=httpx.ASGITransport(app=app),
        retry=ONCE,  # type: ignore[arg-type]
    )


async def test_credentials_rotation_and_workspace(app: object, kbase: KBase) -> None:
    user = kbase.add_user()
    async with mms(app, user.token) as client:
        first = await client.get_credentials()
        assert first.username == user.name
        assert first.access_key == await store_access_key(user.name)
        assert S3User(first.access_key, first.secret_key).can_put(
            BUCKET, f"users-general-warehouse/{user.name}/data/x.txt"
        )
        assert (await client.get_credentials()) == first  # cached, not re-issued

        rotated = await client.rotate_credentials()
        assert rotated.secret_key != first.secret_key
        assert not S3User(first.access_key, first.secret_key).can_list(
            BUCKET, f"users-general-warehouse/{user.name}/"
        )
        assert S3User(rotated.access_key, rotated.secret_key).can_list(
            BUCKET, f"users-general-warehouse/{user.name}/"
        )

        ws = await client.get_workspace()
        assert ws.general_home == f"s3a://{BUCKET}/users-general-warehouse/{user.name}/"
        assert ws.sql_warehouse == f"s3a://{BUCKET}/users-sql-warehouse/{user.name}/"
        assert "globalusers" in ws.groups
        assert (await client.get_groups()).groups == ws.groups
        policies = await client.get_policies()
        assert policies.user_home_policy.policy_name == f"user-home-policy-{user.name}"
        paths = await client.get_accessible_paths()
        assert set(ws.home_paths) <= set(paths.accessible_paths)
        assert (await client.get_sql_warehouse_prefix()).sql_warehouse_prefix == ws.sql_warehouse
        assert (await client.get_namespace_prefix()).user_namespace_prefix == f"u_{user.name}__"


async def test_group_views_and_errors(app: object, client: httpx.AsyncClient, kbase: KBase) -> None:
    admin, member, outsider = kbase.add_user(admin=True), kbase.add_user(), kbase.add_user()
    group = await create_group(client, admin)
    async with mms(app, member.token) as mine, mms(app, outsider.token) as theirs:
        await mine.get_credentials()
        await theirs.get_credentials()
        await add_member(client, admin, group, member.name, "read_only")
        # A read-only member sits in the companion group {g}ro, and may view both.
        assert member.name in (await mine.get_group_workspace(f"{group}ro")).members
        assert (await mine.get_group_workspace(group)).group_name == group
        prefix = await mine.get_group_sql_warehouse_prefix(group)
        assert prefix.owner == group and group in prefix.sql_warehouse_prefix
        ns = await mine.get_namespace_prefix(tenant=group)
        assert ns.tenant_namespace_prefix == f"{group}_"
        with pytest.raises((ForbiddenError, NotFoundError)):
            await theirs.get_group_workspace(group)

    async with mms(app, "no-such-token") as stranger:
        with pytest.raises(AuthenticationError) as caught:
            await stranger.get_credentials()
    assert caught.value.code == 10020 and caught.value.request_id
    noroles = kbase.add_user(roles=())
    async with mms(app, noroles.token) as client_without_role:
        with pytest.raises(ForbiddenError) as forbidden:
            await client_without_role.get_credentials()
    assert forbidden.value.code == 10040


async def test_hook_environment_opens_the_users_home(app: object, kbase: KBase) -> None:
    """The hook's variables, used the way boto3/s3a use them, reach the user's home."""
    user = kbase.add_user()
    hook = make_pre_spawn_hook(
        "http://service",
        store_var(os.environ, "OBJECT_STORE_ENDPOINT"),
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
    )
    spawner = FakeSpawner({"kbase_token": user.token})
    await hook(spawner)
    env = spawner.environment
    s3 = S3User(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_ENDPOINT_URL"])
    home = env["MMS_USER_HOME"].removeprefix(f"s3a://{BUCKET}/")
    assert s3.can_put(BUCKET, f"{home}data/from-hook.txt")
    assert s3.can_get(BUCKET, f"{home}data/from-hook.txt")
    assert not s3.can_put(BUCKET, "users-general-warehouse/someone-else/x.txt")
    assert env["AWS_SECRET_ACCESS_KEY"] not in env["PYSPARK_SUBMIT_ARGS"]
    assert shlex.split(env["PYSPARK_SUBMIT_ARGS"])[-1] == "pyspark-shell"


@pytest.fixture(scope="module")
def service_url(
    app: object, service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    log = Path(tmp_path_factory.mktemp("client")) / "service.log"
    with service_process({**service_env, "LOG_LEVEL": "INFO"}, log) as url:
        yield url


def test_sync_client_against_a_service_process(service_url: str, kbase: KBase) -> None:
    user = kbase.add_user()
    with MinioManagerClient(service_url, user.token, timeout=30) as client:
        creds = client.get_credentials()
        assert S3User(creds.access_key, creds.secret_key).can_list(
            BUCKET, f"users-general-warehouse/{user.name}/"
        )
        assert client.rotate_credentials().secret_key != creds.secret_key
        assert client.get_workspace().username == user.name
    with (
        MinioManagerClient(service_url, "bogus", retry=ONCE) as client,
        pytest.raises(AuthenticationError),
    ):
        client.get_credentials()
