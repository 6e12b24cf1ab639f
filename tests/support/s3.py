"""Check enforcement the way a user meets it: an S3 client holding issued credentials."""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.stack import store_var

DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}


class S3User:
    """One user's view of the store; each ``can_*`` returns True/False, never raises on deny."""

    def __init__(self, access_key: str, secret_key: str, endpoint: str | None = None) -> None:
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint or store_var(os.environ, "OBJECT_STORE_ENDPOINT"),
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                signature_version="s3v4",
            ),
        )

    @staticmethod
    def _denied(exc: ClientError) -> bool:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code in DENIED

    def _try(self, op: str, **kwargs: Any) -> bool:
        try:
            getattr(self.client, op)(**kwargs)
        except ClientError as exc:
            if self._denied(exc):
                return False
            raise
        return True

    def can_put(self, bucket: str, key: str, body: bytes = b"x") -> bool:
        return self._try("put_object", Bucket=bucket, Key=key, Body=body)

    def can_get(self, bucket: str, key: str) -> bool:
        return self._try("get_object", Bucket=bucket, Key=key)

    def can_list(self, bucket: str, prefix: str) -> bool:
        return self._try("list_objects_v2", Bucket=bucket, Prefix=prefix)

    def can_delete(self, bucket: str, key: str) -> bool:
        return self._try("delete_object", Bucket=bucket, Key=key)

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        result = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return [o["Key"] for o in result.get("Contents", [])]


async def failing_pairs(
    endpoint: str, bucket: str, homes: dict[str, tuple[str, str, str]], concurrency: int = 32
) -> list[str]:
    """Users whose pair cannot write and read back an object under their own home.

    ``homes`` maps user → (access key, secret key, home key prefix). Requests are signed with
    the service's own SigV4 helper and sent with one pooled async client: cheap enough to check
    every pair of a storm (boto3 clients cost ~50 ms each to build), while ``S3User`` above
    checks a sample through an independent client.
    """
    import asyncio

    import httpx

    from minio_manager.objectstore.signing import signed_headers

    slots = asyncio.Semaphore(concurrency)
    base = endpoint.rstrip("/")

    async def works(client: httpx.AsyncClient, access: str, secret: str, prefix: str) -> bool:
        url = f"{base}/{bucket}/{prefix}/storm-check.txt"
        body = access.encode()
        async with slots:
            put = await client.put(
                url,
                content=body,
                headers=signed_headers(
                    method="PUT", url=url, body=body, access_key=access, secret_key=secret
                ),
            )
            got = await client.get(
                url,
                headers=signed_headers(
                    method="GET", url=url, body=b"", access_key=access, secret_key=secret
                ),
            )
        return put.status_code == 200 and got.status_code == 200 and got.content == body

    async with httpx.AsyncClient(timeout=60) as client:
        users = list(homes)
        results = await asyncio.gather(*(works(client, *homes[u]) for u in users))
    return [u for u, ok in zip(users, results, strict=True) if not ok]
