"""Typed results: plain frozen dataclasses built from the service's JSON.

Parsing ignores keys it does not know, so a newer service (one that adds fields) does not
break an older client. Secrets are kept out of ``repr`` so that logging a result — the
commonest accident in a spawn hook — cannot leak one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from minio_manager_client.errors import MinioManagerError


def _obj(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise MinioManagerError(f"malformed {what} in the service's answer")
    return data


def _str(data: dict[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise MinioManagerError(f"malformed {what} in the service's answer: {key!r} missing")
    return value


def _opt_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


def _strs(data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key) or []
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _int(data: dict[str, Any], key: str, default: int) -> int:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


@dataclass(frozen=True)
class Credentials:
    """An object-store key pair (``GET /credentials/``, ``POST /credentials/rotate``)."""

    username: str
    access_key: str
    secret_key: str = field(repr=False)

    @classmethod
    def from_json(cls, data: Any) -> Credentials:
        body = _obj(data, "credentials")
        return cls(
            username=_str(body, "username", "credentials"),
            access_key=_str(body, "access_key", "credentials"),
            secret_key=_str(body, "secret_key", "credentials"),
        )


@dataclass(frozen=True)
class PolicyStatement:
    effect: str
    action: tuple[str, ...]
    resource: tuple[str, ...]
    condition: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, data: Any) -> PolicyStatement:
        body = _obj(data, "policy statement")

        def many(key: str) -> tuple[str, ...]:
            value = body.get(key)
            if isinstance(value, str):
                return (value,)
            return _strs(body, key)

        condition = body.get("condition")
        return cls(
            effect=_str(body, "effect", "policy statement"),
            action=many("action"),
            resource=many("resource"),
            condition=condition if isinstance(condition, dict) else None,
        )


@dataclass(frozen=True)
class Policy:
    policy_name: str
    version: str
    statements: tuple[PolicyStatement, ...]

    @classmethod
    def from_json(cls, data: Any) -> Policy:
        body = _obj(data, "policy")
        document = _obj(body.get("policy_document"), "policy document")
        raw = document.get("statement") or []
        return cls(
            policy_name=_str(body, "policy_name", "policy"),
            version=_str(document, "version", "policy document"),
            statements=tuple(PolicyStatement.from_json(s) for s in raw),
        )


@dataclass(frozen=True)
class Workspace:
    """``GET /workspaces/me``: homes, groups, policies and every path the caller may reach."""

    username: str
    access_key: str
    home_paths: tuple[str, ...]
    groups: tuple[str, ...]
    user_policies: tuple[Policy, ...]
    group_policies: tuple[Policy, ...]
    total_policies: int
    accessible_paths: tuple[str, ...]

    @property
    def general_home(self) -> str:
        """``s3a://…/users-general-warehouse/{user}/`` (the first home path)."""
        return self.home_paths[0]

    @property
    def sql_warehouse(self) -> str:
        """``s3a://…/users-sql-warehouse/{user}/`` (the second home path)."""
        return self.home_paths[1]

    @classmethod
    def from_json(cls, data: Any) -> Workspace:
        body = _obj(data, "workspace")
        homes = _strs(body, "home_paths")
        if len(homes) < 2:
            raise MinioManagerError("malformed workspace in the service's answer: home_paths")
        return cls(
            username=_str(body, "username", "workspace"),
            access_key=_str(body, "access_key", "workspace"),
            home_paths=homes,
            groups=_strs(body, "groups"),
            user_policies=tuple(Policy.from_json(p) for p in body.get("user_policies") or []),
            group_policies=tuple(Policy.from_json(p) for p in body.get("group_policies") or []),
            total_policies=_int(body, "total_policies", 0),
            accessible_paths=_strs(body, "accessible_paths"),
        )


@dataclass(frozen=True)
class UserGroups:
    username: str
    groups: tuple[str, ...]
    group_count: int

    @classmethod
    def from_json(cls, data: Any) -> UserGroups:
        body = _obj(data, "groups")
        groups = _strs(body, "groups")
        return cls(
            username=_str(body, "username", "groups"),
            groups=groups,
            group_count=_int(body, "group_count", len(groups)),
        )


@dataclass(frozen=True)
class UserPolicies:
    username: str
    user_home_policy: Policy
    user_system_policy: Policy
    group_policies: tuple[Policy, ...]
    total_policies: int

    @classmethod
    def from_json(cls, data: Any) -> UserPolicies:
        body = _obj(data, "policies")
        return cls(
            username=_str(body, "username", "policies"),
            user_home_policy=Policy.from_json(body.get("user_home_policy")),
            user_system_policy=Policy.from_json(body.get("user_system_policy")),
            group_policies=tuple(Policy.from_json(p) for p in body.get("group_policies") or []),
            total_policies=_int(body, "total_policies", 0),
        )


@dataclass(frozen=True)
class AccessiblePaths:
    username: str
    accessible_paths: tuple[str, ...]
    total_paths: int

    @classmethod
    def from_json(cls, data: Any) -> AccessiblePaths:
        body = _obj(data, "accessible paths")
        paths = _strs(body, "accessible_paths")
        return cls(
            username=_str(body, "username", "accessible paths"),
            accessible_paths=paths,
            total_paths=_int(body, "total_paths", len(paths)),
        )


@dataclass(frozen=True)
class GroupWorkspace:
    group_name: str
    members: tuple[str, ...]
    member_count: int
    accessible_paths: tuple[str, ...]

    @classmethod
    def from_json(cls, data: Any) -> GroupWorkspace:
        body = _obj(data, "group workspace")
        members = _strs(body, "members")
        return cls(
            group_name=_str(body, "group_name", "group workspace"),
            members=members,
            member_count=_int(body, "member_count", len(members)),
            accessible_paths=_strs(body, "accessible_paths"),
        )


@dataclass(frozen=True)
class SqlWarehousePrefix:
    """The caller's (``owner`` = user name) or a group's (``owner`` = group) SQL warehouse."""

    owner: str
    sql_warehouse_prefix: str

    @classmethod
    def from_json(cls, data: Any) -> SqlWarehousePrefix:
        body = _obj(data, "sql warehouse prefix")
        owner = _opt_str(body, "username") or _opt_str(body, "group_name")
        if owner is None:
            raise MinioManagerError("malformed sql warehouse prefix in the service's answer")
        return cls(
            owner=owner,
            sql_warehouse_prefix=_str(body, "sql_warehouse_prefix", "sql warehouse prefix"),
        )


@dataclass(frozen=True)
class NamespacePrefix:
    username: str
    user_namespace_prefix: str
    tenant: str | None = None
    tenant_namespace_prefix: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> NamespacePrefix:
        body = _obj(data, "namespace prefix")
        return cls(
            username=_str(body, "username", "namespace prefix"),
            user_namespace_prefix=_str(body, "user_namespace_prefix", "namespace prefix"),
            tenant=_opt_str(body, "tenant"),
            tenant_namespace_prefix=_opt_str(body, "tenant_namespace_prefix"),
        )
