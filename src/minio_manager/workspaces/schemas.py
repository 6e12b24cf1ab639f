"""Response bodies of /workspaces (SPEC §4.4)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class PolicyStatement(BaseModel):
    effect: str
    action: str | list[str]
    resource: str | list[str]
    condition: dict[str, Any] | None = None
    principal: str | list[str] | dict[str, Any] | None = None


class PolicyDocument(BaseModel):
    version: str
    statement: list[PolicyStatement]


class Policy(BaseModel):
    policy_name: str
    policy_document: PolicyDocument


class WorkspaceResponse(BaseModel):
    username: str
    access_key: str
    secret_key: str
    home_paths: list[str]
    groups: list[str]
    user_policies: list[Policy]
    group_policies: list[Policy]
    total_policies: int
    accessible_paths: list[str]


class UserGroupsResponse(BaseModel):
    username: str
    groups: list[str]
    group_count: int


class UserPoliciesResponse(BaseModel):
    username: str
    user_home_policy: Policy
    user_system_policy: Policy
    group_policies: list[Policy]
    total_policies: int


class AccessiblePathsResponse(BaseModel):
    username: str
    accessible_paths: list[str]
    total_paths: int


class GroupWorkspaceResponse(BaseModel):
    group_name: str
    members: list[str]
    member_count: int
    accessible_paths: list[str]


class GroupSqlWarehousePrefixResponse(BaseModel):
    group_name: str
    sql_warehouse_prefix: str


class UserSqlWarehousePrefixResponse(BaseModel):
    username: str
    sql_warehouse_prefix: str


class NamespacePrefixResponse(BaseModel):
    username: str
    user_namespace_prefix: str
    tenant: str | None = None
    tenant_namespace_prefix: str | None = None
