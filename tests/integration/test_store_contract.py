"""The port's promises, checked on whichever store the suite runs against (MinIO or an
AWS-IAM-API store), with the traps of the second one (docs/backends.md) pinned down."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import boto3
import pytest
import pytest_asyncio
from botocore.config import Config

from minio_manager.objectstore.awsiam import AwsIamStore
from minio_manager.objectstore.minio import MinioStore
from minio_manager.objectstore.port import AccessKey, StoreObject
from tests.support.s3 import S3User
from tests.support.stack import store_kind, store_var
from tests.support.store import open_store

BUCKET = "cdm-lake"
HOME = "users-general-warehouse"
aws_iam_only = pytest.mark.skipif(
    store_kind() != "aws-iam", reason="a trap of AWS-IAM-API stores (SeaweedFS)"
)


@pytest_asyncio.fixture
async def store(stack: dict[str, str]) -> AsyncIterator[MinioStore | AwsIamStore]:
    adapter = open_store(stack)
    await adapter.ensure_buckets([BUCKET])
    yield adapter
    await adapter.close()


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def _home_policy(user: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": [f"arn:aws:s3:::{BUCKET}/{HOME}/{user}/*"],
            }
        ],
    }


def _iam(stack: dict[str, str]) -> Any:
    return boto3.client(
        "iam",
        endpoint_url=store_var(stack, "OBJECT_STORE_ENDPOINT"),
        aws_access_key_id=store_var(stack, "OBJECT_STORE_ACCESS_KEY"),
        aws_secret_access_key=store_var(stack, "OBJECT_STORE_SECRET_KEY"),
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )


async def test_set_user_returns_the_pair_the_store_accepts(
    store: MinioStore | AwsIamStore,
) -> None:
    user = _name("pair")
    try:
        first = await store.set_user(user, "s" * 40)
        assert await store.authenticates(first.access_key, first.secret_key)
        assert not await store.authenticates(first.access_key, "w" * 40)
        found = await store.get_user(user)
        assert found is not None and found.access_key == first.access_key
        # A repair with the pair in force keeps it (a store that issues keys must not rotate).
        assert await store.set_user(user, first.secret_key, keep=first) == first
        # Without ``keep`` it is a rotation: the old pair stops working.
        second = await store.set_user(user, "t" * 40)
        assert second != first
        assert await store.authenticates(second.access_key, second.secret_key)
        assert not await store.authenticates(first.access_key, first.secret_key)
        # A stale ``keep`` (no longer accepted) is replaced, not handed back.
        third = await store.set_user(user, "u" * 40, keep=AccessKey(first.access_key, "x" * 40))
        assert await store.authenticates(third.access_key, third.secret_key)
    finally:
        await store.delete_user(user)
    assert await store.get_user(user) is None


async def test_policy_overwrite_attachments_and_enforcement(
    store: MinioStore | AwsIamStore,
) -> None:
    """Overwriting a named policy keeps its attachments and is enforced for the issued key."""
    user, policy = _name("pol"), _name("pol-home-")
    try:
        pair = await store.set_user(user, "p" * 40)
        document = _home_policy(user)
        read_only = {
            **document,
            "Statement": [{**document["Statement"][0], "Action": ["s3:GetObject"]}],
        }
        await store.put_policy(policy, document)
        await store.set_user_policies(user, [policy])
        s3 = S3User(pair.access_key, pair.secret_key)
        key = f"{HOME}/{user}/a.txt"
        assert s3.can_put(BUCKET, key)
        assert not s3.can_put(BUCKET, f"{HOME}/someone-else/a.txt")
        await store.put_policy(policy, read_only)
        stored = await store.get_policy(policy)
        assert stored is not None and "s3:PutObject" not in str(stored)
        found = await store.get_user(user)
        assert found is not None and found.policies == (policy,)
        assert s3.can_get(BUCKET, key)
        assert not s3.can_put(BUCKET, key)
        await store.set_user_policies(user, [])
        assert not s3.can_get(BUCKET, key)
    finally:
        await store.delete_user(user)
        await store.delete_policy(policy)
        await store.delete_prefix(BUCKET, f"{HOME}/{user}/")
    assert await store.get_policy(policy) is None


async def test_group_lifecycle_and_idempotence(store: MinioStore | AwsIamStore) -> None:
    user, group = _name("gm"), _name("grp")
    try:
        await store.set_user(user, "g" * 40)
        await store.add_group_members(group, [])
        assert (await store.get_group(group)) is not None
        await store.add_group_members(group, [user])
        await store.add_group_members(group, [user])  # again: no error
        found = await store.get_group(group)
        assert found is not None and found.members == (user,)
        assert group in (await store.get_user(user) or pytest.fail("no user")).groups
        await store.remove_group_members(group, [user])
        await store.remove_group_members(group, [user])  # again: no error
        await store.delete_group(group)
        await store.delete_group(group)  # gone: no error
        assert await store.get_group(group) is None
    finally:
        await store.delete_user(user)


async def test_delete_prefix_and_markers(store: MinioStore | AwsIamStore) -> None:
    base = f"test-contract/{uuid.uuid4().hex[:8]}"
    await store.put_objects([StoreObject(BUCKET, f"{base}/k{n}", b"x") for n in range(5)])
    await store.put_objects([StoreObject(BUCKET, f"{base}x/keep", b"x")])
    assert await store.delete_prefix(BUCKET, f"{base}/") == 5
    assert await store.list_keys(BUCKET, f"{base}/") == []
    assert await store.list_keys(BUCKET, f"{base}x/") == [f"{base}x/keep"]
    assert await store.delete_prefix(BUCKET, f"{base}x/") == 1
    assert await store.delete_prefix(BUCKET, "test-contract/no-such-prefix/") == 0


@aws_iam_only
async def test_inline_policies_do_not_come_back_with_a_recreated_user_or_group(
    store: MinioStore | AwsIamStore, stack: dict[str, str]
) -> None:
    """SeaweedFS keeps inline policies past DeleteUser/DeleteGroup and enforces them again on
    a re-create of the name; the adapter deletes them first, so a recycled name starts bare."""
    iam = _iam(stack)
    user, group = _name("inl"), _name("inlg")
    document = _home_policy(user)
    await store.set_user(user, "i" * 40)
    await store.add_group_members(group, [])
    text = json.dumps(document)
    iam.put_user_policy(UserName=user, PolicyName="left-over", PolicyDocument=text)
    iam.put_group_policy(GroupName=group, PolicyName="left-over", PolicyDocument=text)
    await store.delete_user(user)
    await store.delete_group(group)
    pair = await store.set_user(user, "j" * 40)
    await store.add_group_members(group, [user])
    try:
        assert iam.list_user_policies(UserName=user)["PolicyNames"] == []
        assert iam.list_group_policies(GroupName=group)["PolicyNames"] == []
        assert not S3User(pair.access_key, pair.secret_key).can_put(BUCKET, f"{HOME}/{user}/x")
    finally:
        await store.remove_group_members(group, [user])
        await store.delete_group(group)
        await store.delete_user(user)


async def test_every_listed_user_can_be_read(store: MinioStore | AwsIamStore) -> None:
    """``get_user`` finds whatever ``list_users`` names. SeaweedFS lists and gets the admin
    identity of its configuration file but answers ``NoSuchEntity`` when asked for its attached
    policies; the adapter once read that as "no such user" (a page of ``GET /management/users``
    then held fewer users than it counted, and the ownership guard would have taken the name
    for a free one)."""
    user = _name("lu")
    await store.set_user(user, "lu-secret-" + uuid.uuid4().hex)
    try:
        names = await store.list_users()
        assert user in names
        missing = [n for n in names if await store.get_user(n) is None]
        assert missing == []
    finally:
        await store.delete_user(user)
