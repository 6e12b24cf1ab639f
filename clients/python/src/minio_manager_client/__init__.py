"""Client for the MinIO Manager Service, and a JupyterHub spawn hook built on it.

``minio_manager_client.jupyterhub`` (the hook) needs tornado, which JupyterHub brings; the rest
needs only httpx.
"""

from minio_manager_client._core import NO_RETRY, RetryPolicy
from minio_manager_client.client import AsyncMinioManagerClient, MinioManagerClient
from minio_manager_client.errors import (
    AuthenticationError,
    ConflictError,
    ConnectionFailedError,
    ForbiddenError,
    MinioManagerError,
    NotFoundError,
    ServiceUnavailableError,
    ValidationError,
)
from minio_manager_client.models import (
    AccessiblePaths,
    Credentials,
    GroupWorkspace,
    NamespacePrefix,
    Policy,
    PolicyStatement,
    SqlWarehousePrefix,
    UserGroups,
    UserPolicies,
    Workspace,
)

__all__ = [
    "NO_RETRY",
    "AccessiblePaths",
    "AsyncMinioManagerClient",
    "AuthenticationError",
    "ConflictError",
    "ConnectionFailedError",
    "Credentials",
    "ForbiddenError",
    "GroupWorkspace",
    "MinioManagerClient",
    "MinioManagerError",
    "NamespacePrefix",
    "NotFoundError",
    "Policy",
    "PolicyStatement",
    "RetryPolicy",
    "ServiceUnavailableError",
    "SqlWarehousePrefix",
    "UserGroups",
    "UserPolicies",
    "ValidationError",
    "Workspace",
]
