"""/management users and groups (SPEC §4.5): admin, except the two group listings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from minio_manager.auth.deps import AdminDep, CallerDep, ServicesDep
from minio_manager.enforcement import ACCEPTED, ACCEPTED_RESPONSE
from minio_manager.management.schemas import (
    GroupListResponse,
    GroupManagementResponse,
    GroupNamesResponse,
    ResourceDeleteResponse,
    RotateAllResponse,
    UserAdoptResponse,
    UserListResponse,
    UserManagementResponse,
    UserNamesResponse,
)
from minio_manager.params import (
    NOT_LISTING,
    DeletableGroupName,
    GroupName,
    ManagedUsername,
    NewGroupName,
    Username,
)

router = APIRouter(prefix="/management", tags=["management"])

MAX_PAGE_SIZE = 500


# -- users ------------------------------------------------------------------------------------
IncludeUnmanaged = Annotated[
    bool,
    Query(
        description="Also list object-store users the service does not manage (service"
        " accounts, users made by hand). Costs one `list-users` call, which MinIO answers"
        " sealed with Argon2id (64 MiB of memory to open)."
    ),
]


@router.get("/users/names", response_model=UserNamesResponse)
async def list_user_names(
    caller: AdminDep, services: ServicesDep, include_unmanaged: IncludeUnmanaged = False
) -> UserNamesResponse:
    """Every user the service manages (created, adopted or imported), sorted."""
    return await services.management.user_names(caller, include_unmanaged)


@router.get("/users", response_model=UserListResponse)
async def list_users(
    caller: AdminDep,
    services: ServicesDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    include_unmanaged: IncludeUnmanaged = False,
) -> UserListResponse:
    """One page of the users the service manages, with their groups and policy counts."""
    return await services.management.list_users(caller, page, page_size, include_unmanaged)


@router.post(
    f"/users/{{username:{NOT_LISTING}}}",
    response_model=UserManagementResponse,
    status_code=status.HTTP_201_CREATED,
)
async def create_user(
    username: ManagedUsername, caller: AdminDep, services: ServicesDep
) -> UserManagementResponse:
    """Create (or repair) a user; returns the credentials now in force."""
    return await services.management.create_user(caller, username)


@router.post("/users/{username}/rotate-credentials", response_model=UserManagementResponse)
async def rotate_user_credentials(
    username: Username, caller: AdminDep, services: ServicesDep
) -> UserManagementResponse:
    """Give an existing user a new secret; the old one stops working at once."""
    return await services.management.rotate_user(caller, username)


@router.post("/users/{username}/adopt", response_model=UserAdoptResponse)
async def adopt_user(
    username: Username, caller: AdminDep, services: ServicesDep
) -> UserAdoptResponse:
    """Let the service manage an object-store user it did not create (e.g. one a login was
    refused for, 409 / 20032). Its next login or rotation replaces its secret."""
    return await services.management.adopt_user(caller, username)


@router.delete(
    f"/users/{{username:{NOT_LISTING}}}",
    response_model=ResourceDeleteResponse,
    responses=ACCEPTED_RESPONSE,
)
async def delete_user(
    username: ManagedUsername, caller: AdminDep, services: ServicesDep, response: Response
) -> ResourceDeleteResponse:
    """Delete a user with their credentials, policies, memberships, stewardships, shares and
    data. 202: deleted, but policies of principals who shared with the user are pending."""
    answer = await services.management.delete_user(caller, username)
    if answer.enforcement == "pending":
        response.status_code = ACCEPTED
    return answer


@router.post("/credentials/rotate-all-credentials", response_model=RotateAllResponse)
async def rotate_all_credentials(caller: AdminDep, services: ServicesDep) -> RotateAllResponse:
    """Rotate every issued credential; failures are reported per user and do not stop the run."""
    return await services.management.rotate_all(caller)


# -- groups -----------------------------------------------------------------------------------
@router.get("/groups", response_model=GroupListResponse)
async def list_groups(_: CallerDep, services: ServicesDep) -> GroupListResponse:
    """Every group with its members (any user)."""
    return await services.management.list_groups()


@router.get("/groups/names", response_model=GroupNamesResponse)
async def list_group_names(_: CallerDep, services: ServicesDep) -> GroupNamesResponse:
    """Every group name (any user)."""
    return await services.management.group_names()


@router.post(
    f"/groups/{{group:{NOT_LISTING}}}",
    response_model=GroupManagementResponse,
    status_code=status.HTTP_201_CREATED,
)
async def create_group(
    group: NewGroupName, caller: AdminDep, services: ServicesDep
) -> GroupManagementResponse:
    """Create group ``g`` and its read-only twin ``g``ro, with policies and storage."""
    return await services.management.create_group(caller, group)


@router.post(
    "/groups/{group}/members/{username}",
    response_model=GroupManagementResponse,
    responses=ACCEPTED_RESPONSE,
)
async def add_group_member(
    group: GroupName,
    username: Username,
    caller: AdminDep,
    services: ServicesDep,
    response: Response,
) -> GroupManagementResponse:
    """Add a user to one group (``g`` or ``g``ro)."""
    answer = await services.management.add_member(caller, group, username)
    if answer.enforcement == "pending":
        response.status_code = ACCEPTED
    return answer


@router.delete(
    "/groups/{group}/members/{username}",
    response_model=GroupManagementResponse,
    responses=ACCEPTED_RESPONSE,
)
async def remove_group_member(
    group: GroupName,
    username: Username,
    caller: AdminDep,
    services: ServicesDep,
    response: Response,
) -> GroupManagementResponse:
    """Remove a user from one group (``g`` or ``g``ro)."""
    answer = await services.management.remove_member(caller, group, username)
    if answer.enforcement == "pending":
        response.status_code = ACCEPTED
    return answer


@router.delete(f"/groups/{{group:{NOT_LISTING}}}", response_model=ResourceDeleteResponse)
async def delete_group(
    group: DeletableGroupName, caller: AdminDep, services: ServicesDep
) -> ResourceDeleteResponse:
    """Delete ``g`` and ``g``ro after emptying them, with their policies, shares, data and
    tenant metadata."""
    return await services.management.delete_group(caller, group)
