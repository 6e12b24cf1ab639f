"""/tenants: tenant directory, metadata, members and stewards (SPEC §4.2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status

from minio_manager.auth.deps import AdminDep, CallerDep, ServicesDep
from minio_manager.enforcement import (
    ACCEPTED,
    ACCEPTED_RESPONSE,
    PendingAnswer,
    pending_answer,
    set_status,
    state,
)
from minio_manager.params import TenantName, Username
from minio_manager.tenants.schemas import (
    AccessLevel,
    TenantDetail,
    TenantMember,
    TenantMemberChange,
    TenantMetadata,
    TenantMetadataUpdate,
    TenantSteward,
    TenantStewardChange,
    TenantSummary,
)

router = APIRouter(prefix="/tenants", tags=["tenants"])

NO_CONTENT = status.HTTP_204_NO_CONTENT


@router.get("", response_model=list[TenantSummary])
async def list_tenants(caller: CallerDep, services: ServicesDep) -> Response:
    """Every tenant, with its member count and whether you are a member or steward."""
    # The service renders the body (tenants/listing.py): building and encoding one model per
    # tenant per call was the largest cost of a warm call with many tenants (issue 12).
    return Response(await services.tenants.list_tenants(caller), media_type="application/json")


@router.get("/{tenant}", response_model=TenantDetail)
async def get_tenant(tenant: TenantName, caller: CallerDep, services: ServicesDep) -> TenantDetail:
    """Metadata, stewards, members and storage paths. E-mails are shown to members, stewards
    and admins only."""
    return await services.tenants.detail(caller, tenant)


@router.post("/{tenant}", response_model=TenantMetadata)
async def create_tenant(
    tenant: TenantName,
    caller: AdminDep,
    services: ServicesDep,
    body: Annotated[TenantMetadataUpdate | None, Body()] = None,
) -> TenantMetadata:
    """Create the tenant's metadata for an existing group (admin). Idempotent: an existing
    record is returned unchanged."""
    return await services.tenants.create(caller, tenant, body)


@router.patch("/{tenant}", response_model=TenantMetadata)
async def update_tenant(
    tenant: TenantName, body: TenantMetadataUpdate, caller: CallerDep, services: ServicesDep
) -> TenantMetadata:
    """Change the metadata fields you send (steward or admin)."""
    return await services.tenants.update(caller, tenant, body)


@router.delete("/{tenant}", status_code=NO_CONTENT, response_class=Response)
async def delete_tenant(tenant: TenantName, caller: AdminDep, services: ServicesDep) -> Response:
    """Delete the tenant's metadata and steward assignments (admin). The groups stay."""
    await services.tenants.delete(caller, tenant)
    return Response(status_code=NO_CONTENT)


@router.get("/{tenant}/members", response_model=list[TenantMember])
async def list_members(
    tenant: TenantName, caller: CallerDep, services: ServicesDep
) -> list[TenantMember]:
    """Members with their access level (members, stewards and admins)."""
    return await services.tenants.members(caller, tenant)


@router.post(
    "/{tenant}/members/{username}",
    response_model=TenantMemberChange,
    responses=ACCEPTED_RESPONSE,
)
async def add_member(
    tenant: TenantName,
    username: Username,
    caller: CallerDep,
    services: ServicesDep,
    response: Response,
    permission: Annotated[AccessLevel, Query()] = "read_write",
) -> TenantMemberChange:
    """Add a user, or move them between read-write and read-only (steward or admin)."""
    member, pending = await services.tenants.add_member(caller, tenant, username, permission)
    set_status(response, pending)
    return TenantMemberChange(**member.model_dump(), **state(pending))


@router.delete(
    "/{tenant}/members/{username}",
    status_code=NO_CONTENT,
    response_class=Response,
    responses={ACCEPTED: {**ACCEPTED_RESPONSE[ACCEPTED], "model": PendingAnswer}},
)
async def remove_member(
    tenant: TenantName, username: Username, caller: CallerDep, services: ServicesDep
) -> Response:
    """Remove a user from the tenant (steward or admin). A steward cannot remove themselves
    or another steward."""
    pending = await services.tenants.remove_member(caller, tenant, username)
    if pending:
        body = pending_answer(pending, "the removal").model_dump_json()
        return Response(body, status_code=ACCEPTED, media_type="application/json")
    return Response(status_code=NO_CONTENT)


@router.get("/{tenant}/stewards", response_model=list[TenantSteward])
async def list_stewards(
    tenant: TenantName, caller: CallerDep, services: ServicesDep
) -> list[TenantSteward]:
    """The tenant's stewards (members, stewards and admins)."""
    return await services.tenants.stewards(caller, tenant)


@router.post(
    "/{tenant}/stewards/{username}",
    response_model=TenantStewardChange,
    responses=ACCEPTED_RESPONSE,
)
async def assign_steward(
    tenant: TenantName,
    username: Username,
    caller: AdminDep,
    services: ServicesDep,
    response: Response,
) -> TenantStewardChange:
    """Make a user a steward (admin; idempotent). Adds them read-write if not a member."""
    steward, pending = await services.tenants.assign_steward(caller, tenant, username)
    set_status(response, pending)
    return TenantStewardChange(**steward.model_dump(), **state(pending))


@router.delete("/{tenant}/stewards/{username}", status_code=NO_CONTENT, response_class=Response)
async def remove_steward(
    tenant: TenantName, username: Username, caller: AdminDep, services: ServicesDep
) -> Response:
    """Remove a steward assignment (admin). Membership is kept."""
    await services.tenants.remove_steward(caller, tenant, username)
    return Response(status_code=NO_CONTENT)
