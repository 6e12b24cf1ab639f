"""/workspaces: the caller's own homes, groups, policies and prefixes (SPEC §4.4)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from minio_manager.auth.deps import CallerDep, ServicesDep
from minio_manager.params import TENANT_QUERY_SCHEMA, GroupName
from minio_manager.workspaces.schemas import (
    AccessiblePathsResponse,
    GroupSqlWarehousePrefixResponse,
    GroupWorkspaceResponse,
    NamespacePrefixResponse,
    UserGroupsResponse,
    UserPoliciesResponse,
    UserSqlWarehousePrefixResponse,
    WorkspaceResponse,
)

router = APIRouter(prefix="/workspaces", tags=["workspaces"])


@router.get("/me", response_model=WorkspaceResponse)
async def my_workspace(caller: CallerDep, services: ServicesDep) -> WorkspaceResponse:
    """Your homes, groups, policies and accessible paths (the secret is never shown here)."""
    return await services.workspaces.me(caller)


@router.get("/me/groups", response_model=UserGroupsResponse)
async def my_groups(caller: CallerDep, services: ServicesDep) -> UserGroupsResponse:
    """Every group you belong to, read-only forms included."""
    return await services.workspaces.groups(caller)


@router.get("/me/policies", response_model=UserPoliciesResponse)
async def my_policies(caller: CallerDep, services: ServicesDep) -> UserPoliciesResponse:
    """The policy documents in force for you, as the object store holds them."""
    return await services.workspaces.policies(caller)


@router.get("/me/accessible-paths", response_model=AccessiblePathsResponse)
async def my_accessible_paths(caller: CallerDep, services: ServicesDep) -> AccessiblePathsResponse:
    """Every path your policies and groups open, sorted."""
    return await services.workspaces.accessible_paths(caller)


@router.get("/me/sql-warehouse-prefix", response_model=UserSqlWarehousePrefixResponse)
async def my_sql_warehouse_prefix(
    caller: CallerDep, services: ServicesDep
) -> UserSqlWarehousePrefixResponse:
    """Where your Spark SQL warehouse lives."""
    return services.workspaces.sql_prefix(caller)


@router.get("/me/namespace-prefix", response_model=NamespacePrefixResponse)
async def my_namespace_prefix(
    caller: CallerDep,
    services: ServicesDep,
    tenant: Annotated[
        str | None, Query(min_length=1, max_length=64, json_schema_extra=TENANT_QUERY_SCHEMA)
    ] = None,
) -> NamespacePrefixResponse:
    """Your Hive namespace prefix, and a tenant's if you are a member of it."""
    return await services.workspaces.namespace_prefix(caller, tenant)


@router.get("/me/groups/{group}", response_model=GroupWorkspaceResponse)
async def group_workspace(
    group: GroupName, caller: CallerDep, services: ServicesDep
) -> GroupWorkspaceResponse:
    """A group you belong to (as ``g`` or ``g``ro): members and the paths its policy opens."""
    return await services.workspaces.group(caller, group)


@router.get(
    "/me/groups/{group}/sql-warehouse-prefix", response_model=GroupSqlWarehousePrefixResponse
)
async def group_sql_warehouse_prefix(
    group: GroupName, caller: CallerDep, services: ServicesDep
) -> GroupSqlWarehousePrefixResponse:
    """Where a group's Spark SQL warehouse lives (members only)."""
    return await services.workspaces.group_sql_prefix(caller, group)
