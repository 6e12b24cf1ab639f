"""/sharing: share paths of your home with users and groups (SPEC §4.3)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from minio_manager.auth.deps import CallerDep, ServicesDep
from minio_manager.enforcement import ACCEPTED_RESPONSE, set_status, state
from minio_manager.sharing.schemas import (
    PathAccessResponse,
    PathRequest,
    PublicAccessResponse,
    ShareRequest,
    ShareResponse,
    UnshareRequest,
    UnshareResponse,
)

router = APIRouter(prefix="/sharing", tags=["sharing"])

MULTI_STATUS = 207
PARTIAL: dict[int | str, dict[str, Any]] = {
    MULTI_STATUS: {"description": "Some targets failed; see errors[]"},
    **ACCEPTED_RESPONSE,
}


@router.post("/share", response_model=ShareResponse, responses=PARTIAL)
async def share(
    body: ShareRequest, caller: CallerDep, services: ServicesDep, response: Response
) -> ShareResponse:
    """Grant users and groups read or write access to a path inside your home.

    Sharing again at another level changes the level. Unknown users or groups are reported
    in ``errors`` (status 207) while the others are shared with. 202: recorded, enforcement
    pending (it also lists ``errors``).
    """
    outcome = await services.sharing.share(
        caller.username, body.path, body.with_users, body.with_groups, body.permission
    )
    if outcome.errors:
        response.status_code = MULTI_STATUS
    set_status(response, outcome.pending)
    return ShareResponse(
        **state(outcome.pending),
        path=outcome.path.url,
        shared_with_users=outcome.users,
        shared_with_groups=outcome.groups,
        success_count=outcome.success_count,
        errors=outcome.errors,
        shared_by=caller.username,
        shared_at=outcome.at,
    )


@router.post("/unshare", response_model=UnshareResponse, responses=PARTIAL)
async def unshare(
    body: UnshareRequest, caller: CallerDep, services: ServicesDep, response: Response
) -> UnshareResponse:
    """Remove the shares of a path held by the given users and groups."""
    outcome = await services.sharing.unshare(
        caller.username, body.path, body.from_users, body.from_groups
    )
    if outcome.errors:
        response.status_code = MULTI_STATUS
    set_status(response, outcome.pending)
    return UnshareResponse(
        **state(outcome.pending),
        path=outcome.path.url,
        unshared_from_users=outcome.users,
        unshared_from_groups=outcome.groups,
        success_count=outcome.success_count,
        errors=outcome.errors,
        unshared_by=caller.username,
        unshared_at=outcome.at,
    )


@router.post("/make-public", response_model=PublicAccessResponse, responses=ACCEPTED_RESPONSE)
async def make_public(
    body: PathRequest, caller: CallerDep, services: ServicesDep, response: Response
) -> PublicAccessResponse:
    """Let every user read the path (a read-only share with ``globalusers``)."""
    path, pending = await services.sharing.make_public(caller.username, body.path)
    set_status(response, pending)
    return PublicAccessResponse(path=path.url, is_public=True, **state(pending))


@router.post("/make-private", response_model=PublicAccessResponse, responses=ACCEPTED_RESPONSE)
async def make_private(
    body: PathRequest, caller: CallerDep, services: ServicesDep, response: Response
) -> PublicAccessResponse:
    """Remove every share of the path and of every path below it."""
    path, pending = await services.sharing.make_private(caller.username, body.path)
    set_status(response, pending)
    return PublicAccessResponse(path=path.url, is_public=False, **state(pending))


@router.post("/get_path_access_info", response_model=PathAccessResponse)
async def get_path_access_info(
    body: PathRequest, caller: CallerDep, services: ServicesDep
) -> PathAccessResponse:
    """Who can read all of the path: its owner and holders of a share on it or above it.

    Only the owner or an administrator may ask.
    """
    info = await services.sharing.access_info(caller.username, caller.is_admin, body.path)
    return PathAccessResponse(
        path=info.path.url, users=info.users, groups=info.groups, public=info.public
    )
