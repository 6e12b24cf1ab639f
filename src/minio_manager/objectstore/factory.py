"""Choose and build the adapter named by ``OBJECT_STORE``: the only place that knows both."""

from __future__ import annotations

from minio_manager.config import Settings
from minio_manager.objectstore.minio import MinioStore
from minio_manager.objectstore.port import AWS_MAX_ATTACHMENTS, ObjectStore
from minio_manager.observability.instrument import instrument_http_client, object_store_operation


def build_store(settings: Settings) -> ObjectStore:
    """``minio``: MinIO's admin API; ``aws-iam``: the AWS IAM API (docs/backends.md)."""
    secret = settings.object_store_secret_key.get_secret_value()
    if settings.object_store == "aws-iam":
        # Imported here: aiobotocore/botocore/aiohttp are ~600 modules that a MinIO service
        # never uses (docs/decisions.md, "Memory: the service's baseline").
        from minio_manager.objectstore.awsiam import AwsIamStore

        # Timed per call inside the adapter (awsclients.call).
        return AwsIamStore(
            settings.object_store_endpoint,
            settings.object_store_access_key,
            secret,
            region=settings.object_store_region,
            timeout_seconds=settings.minio_timeout_seconds,
            max_connections=settings.minio_max_connections,
            policy_max_bytes=settings.policy_max_bytes,
            policy_max_attachments=settings.policy_max_attachments or AWS_MAX_ATTACHMENTS,
        )
    minio = MinioStore(
        settings.object_store_endpoint,
        settings.object_store_access_key,
        secret,
        timeout_seconds=settings.minio_timeout_seconds,
        max_connections=settings.minio_max_connections,
        policy_max_bytes=settings.policy_max_bytes,
        policy_max_attachments=settings.policy_max_attachments or None,
        pool_wait_seconds=settings.pool_wait_seconds,
    )
    instrument_http_client(minio.http, "object_store", object_store_operation)
    return minio
