"""/credentials: the JupyterHub spawner hook's call."""

from __future__ import annotations

from fastapi import APIRouter

from minio_manager.auth.deps import CallerDep, ServicesDep
from minio_manager.credentials.schemas import CredentialsResponse

router = APIRouter(prefix="/credentials", tags=["credentials"])


@router.get("/", response_model=CredentialsResponse)
async def get_credentials(caller: CallerDep, services: ServicesDep) -> CredentialsResponse:
    """Your object-store access key and secret: created on first call, then cached."""
    creds = await services.credentials.get_or_issue(caller.username)
    return CredentialsResponse(
        username=caller.username, access_key=creds.access_key, secret_key=creds.secret_key
    )


@router.post("/rotate", response_model=CredentialsResponse)
async def rotate_credentials(caller: CallerDep, services: ServicesDep) -> CredentialsResponse:
    """Replace your secret; the old one stops working at once."""
    creds = await services.credentials.rotate(
        caller.username, actor=caller.username, provision_missing=True
    )
    return CredentialsResponse(
        username=caller.username, access_key=creds.access_key, secret_key=creds.secret_key
    )
