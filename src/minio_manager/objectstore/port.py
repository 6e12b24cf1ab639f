"""What governance needs from an object store, and nothing more.

Services depend on this Protocol (and the errors in ``objectstore/errors.py``) only; the
adapters (``minio.py``: MinIO's admin API; ``awsiam.py``: the AWS IAM API, e.g. SeaweedFS)
are chosen by ``objectstore/factory.py``. Every method is idempotent: creating what exists or
deleting what is gone succeeds, which lets a half-finished operation simply be run again.
How the two kinds of store differ, and how each difference is handled: ``docs/backends.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class StoreUser:
    name: str
    policies: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    enabled: bool = True
    access_keys: tuple[str, ...] = ()
    """The access key ids the store holds for the user (MinIO: the name itself)."""

    @property
    def access_key(self) -> str:
        """What a client signs with: the first key id, else the name (nothing issued yet)."""
        return self.access_keys[0] if self.access_keys else self.name


@dataclass(frozen=True)
class StoreGroup:
    name: str
    members: tuple[str, ...] = ()
    policies: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True)
class AccessKey:
    """A key pair the store accepts for one user."""

    access_key: str
    secret_key: str = field(repr=False)


@dataclass(frozen=True)
class StoreObject:
    bucket: str
    key: str
    body: bytes = field(default=b"", repr=False)


AWS_MAX_ATTACHMENTS = 10
"""Managed policies the AWS IAM API lets one user or group have attached (SeaweedFS 4.48 too:
``LimitExceeded`` on the 11th)."""


class ObjectStore(Protocol):
    """Users, groups, named policies and attachments, buckets and marker objects."""

    policy_max_bytes: int
    policy_max_attachments: int | None
    """Policies one user or group may have attached, or None when the store sets no limit."""

    async def ping(self) -> None: ...
    async def close(self) -> None: ...

    # users
    async def set_user(self, name: str, secret: str, keep: AccessKey | None = None) -> AccessKey:
        """Create the user if needed and return the one pair the store accepts for it now.

        MinIO takes ``secret`` (the access key is the name). A store that issues its own key
        pairs (AWS IAM API) ignores ``secret``: it returns ``keep`` if that pair still
        authenticates, else replaces every key of the user with a new pair. Without ``keep``
        the old pair stops working either way (a rotation).
        """

    async def get_user(self, name: str) -> StoreUser | None: ...
    async def list_users(self) -> list[str]: ...
    async def delete_user(self, name: str) -> None: ...
    async def authenticates(self, access_key: str, secret_key: str) -> bool:
        """Whether the store accepts this key pair (a request signed with it, as the user)."""

    # groups
    async def add_group_members(self, group: str, members: Sequence[str]) -> None:
        """Create the group if needed (also with no members) and add the members."""

    async def remove_group_members(self, group: str, members: Sequence[str]) -> None: ...
    async def get_group(self, group: str) -> StoreGroup | None: ...
    async def list_groups(self) -> list[str]: ...
    async def delete_group(self, group: str) -> None:
        """Delete an (emptied) group; callers remove members first."""

    # policies
    async def put_policy(self, name: str, document: dict[str, Any]) -> None:
        """Create or overwrite a named policy in one call (attachments are kept)."""

    async def get_policy(self, name: str) -> dict[str, Any] | None: ...
    async def list_policies(self) -> list[str]: ...
    async def delete_policy(self, name: str) -> None: ...
    async def set_user_policies(self, user: str, names: Sequence[str]) -> None:
        """Replace the exact set of policies attached to a user."""

    async def set_group_policies(self, group: str, names: Sequence[str]) -> None:
        """Replace the exact set of policies attached to a group."""

    # data
    async def ensure_buckets(self, buckets: Sequence[str]) -> None: ...
    async def put_objects(self, objects: Sequence[StoreObject]) -> None: ...
    async def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix``; returns how many."""
