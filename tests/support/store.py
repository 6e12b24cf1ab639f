"""The object store under test (MinIO or an AWS-IAM-API store), reached as the service does."""

from __future__ import annotations

import os

from minio_manager.objectstore.awsiam import AwsIamStore
from minio_manager.objectstore.minio import MinioStore
from tests.support.stack import store_kind, store_var

Env = dict[str, str] | os._Environ[str]


def open_store(
    env: Env | None = None, access_key: str | None = None, secret_key: str | None = None
) -> MinioStore | AwsIamStore:
    """An independent adapter (another replica's view), with the admin pair unless given."""
    env = env if env is not None else os.environ
    endpoint = store_var(env, "OBJECT_STORE_ENDPOINT")
    access_key = access_key or store_var(env, "OBJECT_STORE_ACCESS_KEY")
    secret_key = secret_key or store_var(env, "OBJECT_STORE_SECRET_KEY")
    if store_kind(env) == "aws-iam":
        return AwsIamStore(endpoint, access_key, secret_key)
    return MinioStore(endpoint, access_key, secret_key)


async def list_keys(bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix``, listed with the admin pair (listing is not on the port)."""
    store = open_store()
    try:
        return await store.list_keys(bucket, prefix)
    finally:
        await store.close()


async def store_access_key(user: str) -> str:
    """The access key id the store holds for ``user`` (MinIO: the name; an AWS-IAM-API store:
    the id it issued), read independently of the service."""
    store = open_store()
    try:
        found = await store.get_user(user)
    finally:
        await store.close()
    assert found is not None, f"no store user {user}"
    return found.access_key
