"""S3 data calls of the AWS-IAM adapter: buckets, marker objects, listing, prefix deletion."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from minio_manager.objectstore.awsclients import AwsClients, call
from minio_manager.objectstore.deletion import PAGE_SIZE, DeleteFailure, not_deleted
from minio_manager.objectstore.errors import StoreRejected
from minio_manager.objectstore.port import StoreObject

BUCKET_EXISTS = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})


class S3Data:
    def __init__(self, clients: AwsClients) -> None:
        self._clients = clients

    async def _ensure_bucket(self, bucket: str) -> None:
        s3 = await self._clients.s3()
        try:
            await call("s3:CreateBucket", s3.create_bucket(Bucket=bucket))
        except StoreRejected as exc:
            if exc.code not in BUCKET_EXISTS:
                raise

    async def ensure_buckets(self, buckets: Sequence[str]) -> None:
        await asyncio.gather(*(self._ensure_bucket(b) for b in sorted(set(buckets))))

    async def put_objects(self, objects: Sequence[StoreObject]) -> None:
        s3 = await self._clients.s3()
        await asyncio.gather(
            *(
                call("s3:PutObject", s3.put_object(Bucket=o.bucket, Key=o.key, Body=o.body))
                for o in objects
            )
        )

    async def _page(
        self, bucket: str, prefix: str, token: str | None
    ) -> tuple[list[str], str | None]:
        """One page (≤1000 keys) and the continuation token, or None at the end."""
        s3 = await self._clients.s3()
        try:
            if token:
                page = await call(
                    "s3:ListObjectsV2",
                    s3.list_objects_v2(
                        Bucket=bucket, Prefix=prefix, MaxKeys=PAGE_SIZE, ContinuationToken=token
                    ),
                )
            else:
                page = await call(
                    "s3:ListObjectsV2",
                    s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=PAGE_SIZE),
                )
        except StoreRejected as exc:
            if exc.not_found:
                return [], None
            raise
        keys = [o["Key"] for o in page.get("Contents", [])]
        following = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not following:
            return keys, None
        return keys, following

    async def list_keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        token: str | None = None
        while True:
            page, token = await self._page(bucket, prefix, token)
            keys += page
            if token is None:
                return keys

    async def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Page by page, reading each DeleteObjects answer's per-key errors, then one more
        listing: anything left raises ``DataNotDeleted`` (as the MinIO adapter does)."""
        deleted = 0
        refused: list[DeleteFailure] = []
        token: str | None = None
        while True:
            batch, token = await self._page(bucket, prefix, token)
            if batch:
                failures = await self._delete_batch(bucket, batch)
                refused += failures
                deleted += len(batch) - len(failures)
            if token is None:
                break
        remaining, _ = await self._page(bucket, prefix, None)
        if refused or remaining:
            raise not_deleted(bucket, prefix, refused, remaining)
        return deleted

    async def _delete_batch(self, bucket: str, keys: Sequence[str]) -> list[DeleteFailure]:
        s3 = await self._clients.s3()
        answer = await call(
            "s3:DeleteObjects",
            s3.delete_objects(
                Bucket=bucket,
                Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
            ),
        )
        return [
            DeleteFailure(e.get("Key", ""), e.get("Code", "Unknown"), e.get("Message", ""))
            for e in answer.get("Errors", [])
        ]
