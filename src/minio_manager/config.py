"""One settings object, read from the environment (and ``.env``) once at start-up.

A missing required variable stops start-up with a message that names it (and never prints a
value). Secrets are ``SecretStr`` so that they do not leak through ``repr`` or logs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from minio_manager.governance.layout import Layout

CommaList = Annotated[tuple[str, ...], NoDecode]


def _split_comma_list(value: object) -> object:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


class Settings(BaseSettings):
    """Environment variables of SPEC §9, plus tunables with safe defaults."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # The object store: which kind of API drives it (docs/backends.md), where, and its admin
    # key pair. The MINIO_* names of the reference stay accepted; the generic ones win.
    object_store: Literal["minio", "aws-iam"] = "minio"
    object_store_endpoint: str = Field(
        validation_alias=AliasChoices("object_store_endpoint", "minio_endpoint")
    )
    object_store_access_key: str = Field(
        validation_alias=AliasChoices("object_store_access_key", "minio_root_user")
    )
    object_store_secret_key: SecretStr = Field(
        validation_alias=AliasChoices("object_store_secret_key", "minio_root_password")
    )
    # Signing region of an AWS-IAM-API store (SeaweedFS and Ceph RGW accept any).
    object_store_region: str = "us-east-1"
    redis_url: str
    mms_db_host: str
    mms_db_port: int = 5432
    mms_db_name: str
    mms_db_user: str
    mms_db_password: SecretStr
    mms_db_encryption_key: SecretStr

    kbase_auth_url: str = "https://ci.kbase.us/services/auth/"
    kbase_admin_roles: CommaList = ("KBASE_ADMIN",)
    kbase_required_roles: CommaList = ("BERDL_USER",)

    cdm_default_bucket: str = "cdm-lake"
    cdm_default_users_sql_warehouse_prefix: str = "users-sql-warehouse"
    cdm_default_users_general_warehouse_prefix: str = "users-general-warehouse"
    cdm_default_tenant_general_warehouse_prefix: str = "tenant-general-warehouse"
    cdm_default_tenant_sql_warehouse_prefix: str = "tenant-sql-warehouse"

    service_root_path: str = ""
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "text"

    # Tunables (not in the reference): documented in docs/configuration.md.
    credential_lock_wait_seconds: float = Field(default=30.0, gt=0)
    credential_lock_expiry_seconds: float = Field(default=120.0, gt=0)
    # Group-pair locks (membership changes, shares to groups). Until 2026-12 these were
    # called POLICY_LOCK_*, from when they also guarded policy rendering; both names work.
    group_lock_wait_seconds: float = Field(
        default=60.0,
        gt=0,
        validation_alias=AliasChoices("group_lock_wait_seconds", "policy_lock_wait_seconds"),
    )
    group_lock_expiry_seconds: float = Field(
        default=120.0,
        gt=0,
        validation_alias=AliasChoices("group_lock_expiry_seconds", "policy_lock_expiry_seconds"),
    )
    auth_cache_max_entries: int = Field(default=10_000, gt=0)
    auth_timeout_seconds: float = Field(default=10.0, gt=0)
    minio_timeout_seconds: float = Field(default=30.0, gt=0)
    minio_max_connections: int = Field(default=64, gt=0)
    db_pool_size: int = Field(default=20, gt=0)
    # Connections of the hot reads' own asyncpg pool (opened on demand, see db/fast.py).
    hot_pool_size: int = Field(default=8, gt=0)
    # Admission (issue 12): at most this many provisionings (first logins, admin creates)
    # run at once per replica; the rest queue in arrival order for up to the queue wait.
    provision_concurrency: int = Field(default=8, gt=0)
    provision_queue_wait_seconds: float = Field(default=300.0, gt=0)
    # How long a caller waits for a pooled connection (PostgreSQL, Redis, KBase, MinIO)
    # before it is told "busy" (429); never reported as the dependency being down.
    pool_wait_seconds: float = Field(default=30.0, gt=0)
    auth_max_connections: int = Field(default=64, gt=0)
    redis_max_connections: int = Field(default=0, ge=0)
    """0: derived from the admission bound (``redis_pool_size``)."""
    policy_max_bytes: int = Field(default=20_480, gt=1024)
    # Managed policies one user or group may have attached: 0 = the store kind's own limit
    # (none met on MinIO; 10 on the AWS IAM API, SeaweedFS included). A share that would need
    # more is refused (409) before anything is recorded (docs/backends.md, row 21).
    policy_max_attachments: int = Field(default=0, ge=0)
    group_cache_seconds: float = Field(default=5.0, ge=0)
    # Membership cache entries live this long while Redis (the change feed) is heard: the
    # bound for changes made outside the service; see docs/decisions.md.
    membership_cache_max_seconds: float = Field(default=300.0, gt=0)
    # Every accepted body is a few KiB; larger ones are refused (413) before they are read.
    max_request_body_bytes: int = Field(default=65_536, ge=1024)
    # Outbox: how long a request waits for a principal's advisory lock before answering
    # 202 (pending) — below the database command timeout (30 s) —, and how often the
    # reconciler looks for due rows.
    enforce_lock_wait_seconds: float = Field(default=10.0, gt=0, le=25)
    reconcile_interval_seconds: float = Field(default=0.5, gt=0, le=60)

    @field_validator("kbase_admin_roles", "kbase_required_roles", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split_comma_list(value)

    @property
    def layout(self) -> Layout:
        return Layout(
            bucket=self.cdm_default_bucket,
            users_general_prefix=self.cdm_default_users_general_warehouse_prefix.strip("/"),
            users_sql_prefix=self.cdm_default_users_sql_warehouse_prefix.strip("/"),
            tenant_general_prefix=self.cdm_default_tenant_general_warehouse_prefix.strip("/"),
            tenant_sql_prefix=self.cdm_default_tenant_sql_warehouse_prefix.strip("/"),
        )

    @property
    def redis_pool_size(self) -> int:
        """Redis connections: a provisioning holds at most two lock commands at once (its
        credential lock and a policy lock), plus room for every other endpoint's locks."""
        return self.redis_max_connections or 2 * self.provision_concurrency + 32

    @property
    def database_dsn(self) -> str:
        """Async SQLAlchemy URL without the password (it is passed separately)."""
        return (
            f"postgresql+asyncpg://{self.mms_db_user}@{self.mms_db_host}:{self.mms_db_port}"
            f"/{self.mms_db_name}"
        )


LEGACY_NAMES = {
    "OBJECT_STORE_ENDPOINT": "MINIO_ENDPOINT",
    "OBJECT_STORE_ACCESS_KEY": "MINIO_ROOT_USER",
    "OBJECT_STORE_SECRET_KEY": "MINIO_ROOT_PASSWORD",
}
"""Generic variable → the reference's name for it, still accepted."""


class ConfigurationError(RuntimeError):
    """Raised at start-up when the environment is incomplete or invalid."""


def load_settings() -> Settings:
    """Build settings, turning pydantic's error into one that names variables only."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "_".join(str(p) for p in err["loc"]).upper()
            if name in LEGACY_NAMES:
                name = f"{name} (or {LEGACY_NAMES[name]})"
            reason = "is required but not set" if err["type"] == "missing" else err["msg"]
            problems.append(f"{name} {reason}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
