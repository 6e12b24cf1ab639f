"""Where each principal's data lives, and which grants its policy templates hold.

Pure data: no I/O. Every key here is a bucket-relative prefix without a trailing slash;
a grant on key ``K`` covers the object ``K`` and everything below ``K/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SPARK_LOGS_BUCKET = "cdm-spark-job-logs"
SPARK_LOGS_PREFIX = "spark-job-logs"
CTS_BUCKET = "cts"
CTS_LOGS_PREFIX = "logs"
CTS_IO_PREFIX = "io"
MARKER_NAME = ".s3keep"
GLOBAL_GROUP = "globalusers"
READ_ONLY_SUFFIX = "ro"


@dataclass(frozen=True, order=True)
class Grant:
    """Access to one prefix of one bucket; ``write`` implies read."""

    bucket: str
    key: str
    write: bool = False


@dataclass(frozen=True)
class Layout:
    """The bucket and prefix names of SPEC §1 (each configurable)."""

    bucket: str = "cdm-lake"
    users_general_prefix: str = "users-general-warehouse"
    users_sql_prefix: str = "users-sql-warehouse"
    tenant_general_prefix: str = "tenant-general-warehouse"
    tenant_sql_prefix: str = "tenant-sql-warehouse"
    system_buckets: tuple[str, ...] = field(default=(SPARK_LOGS_BUCKET, CTS_BUCKET))

    # -- users ------------------------------------------------------------------------------
    def user_general_key(self, user: str) -> str:
        return f"{self.users_general_prefix}/{user}"

    def user_sql_key(self, user: str) -> str:
        return f"{self.users_sql_prefix}/{user}"

    @staticmethod
    def user_namespace_prefix(user: str) -> str:
        return f"u_{user}__"

    def user_home_keys(self, user: str) -> tuple[str, str]:
        """The two prefixes a user owns (and may share from)."""
        return (self.user_general_key(user), self.user_sql_key(user))

    def user_home_urls(self, user: str) -> list[str]:
        return [f"s3a://{self.bucket}/{key}/" for key in self.user_home_keys(user)]

    def user_sql_warehouse_url(self, user: str) -> str:
        return f"s3a://{self.bucket}/{self.user_sql_key(user)}/"

    def user_home_grants(self, user: str) -> list[Grant]:
        """Template of ``user-home-policy-{u}``: own general home, governed SQL databases."""
        sql = self.user_sql_key(user)
        return [
            Grant(self.bucket, self.user_general_key(user), write=True),
            Grant(self.bucket, sql, write=False),
            Grant(self.bucket, f"{sql}/{self.user_namespace_prefix(user)}*", write=True),
        ]

    @staticmethod
    def user_system_grants(user: str) -> list[Grant]:
        """Template of ``user-system-policy-{u}``: Spark job logs and CTS paths."""
        return [
            Grant(SPARK_LOGS_BUCKET, f"{SPARK_LOGS_PREFIX}/{user}", write=True),
            Grant(CTS_BUCKET, CTS_LOGS_PREFIX, write=False),
            Grant(CTS_BUCKET, CTS_IO_PREFIX, write=True),
        ]

    def user_marker_keys(self, user: str) -> list[tuple[str, str]]:
        """(bucket, object key) of every marker a provisioned user has."""
        general = self.user_general_key(user)
        keys = [
            (self.bucket, f"{general}/{MARKER_NAME}"),
            (self.bucket, f"{self.user_sql_key(user)}/{MARKER_NAME}"),
        ]
        keys += [(self.bucket, f"{general}/{sub}/{MARKER_NAME}") for sub in USER_SUBFOLDERS]
        keys.append((SPARK_LOGS_BUCKET, f"{SPARK_LOGS_PREFIX}/{user}/{MARKER_NAME}"))
        return keys

    # -- groups -----------------------------------------------------------------------------
    def tenant_general_key(self, group: str) -> str:
        return f"{self.tenant_general_prefix}/{group}"

    def tenant_sql_key(self, group: str) -> str:
        return f"{self.tenant_sql_prefix}/{group}"

    @staticmethod
    def tenant_namespace_prefix(group: str) -> str:
        return f"{group}_"

    def tenant_general_url(self, group: str) -> str:
        return f"s3a://{self.bucket}/{self.tenant_general_key(group)}/"

    def tenant_sql_warehouse_url(self, group: str) -> str:
        return f"s3a://{self.bucket}/{self.tenant_sql_key(group)}/"

    def group_grants(self, group: str, *, write: bool) -> list[Grant]:
        """Template of ``group-policy-{g}`` (write) and ``group-policy-{g}ro`` (read)."""
        sql = self.tenant_sql_key(group)
        return [
            Grant(self.bucket, self.tenant_general_key(group), write=write),
            Grant(self.bucket, sql, write=False),
            Grant(self.bucket, f"{sql}/{self.tenant_namespace_prefix(group)}*", write=write),
        ]

    def group_marker_keys(self, group: str) -> list[tuple[str, str]]:
        general = self.tenant_general_key(group)
        keys = [
            (self.bucket, f"{general}/{MARKER_NAME}"),
            (self.bucket, f"{self.tenant_sql_key(group)}/{MARKER_NAME}"),
        ]
        keys += [(self.bucket, f"{general}/{sub}/{MARKER_NAME}") for sub in GROUP_SUBFOLDERS]
        return keys

    @property
    def all_buckets(self) -> tuple[str, ...]:
        return (self.bucket, *self.system_buckets)


USER_SUBFOLDERS = ("data", "notebooks", "shared")
GROUP_SUBFOLDERS = ("shared", "datasets", "projects")


def user_home_policy_name(user: str) -> str:
    return f"user-home-policy-{user}"


def user_system_policy_name(user: str) -> str:
    return f"user-system-policy-{user}"


def group_policy_name(group: str) -> str:
    """Policy of a group; for the read-only twin pass ``{g}ro`` itself."""
    return f"group-policy-{group}"


def read_only_group(group: str) -> str:
    return f"{group}{READ_ONLY_SUFFIX}"
