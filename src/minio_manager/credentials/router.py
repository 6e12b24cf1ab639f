"""/credentials: the JupyterHub spawner hook's call."""

from __future__ import annotations

from fastapi import APIRouter, Response

from minio_manager.auth.deps import CallerDep, ServicesDep
from minio_manager.credentials.schemas import CredentialsResponse
from minio_manager.credentials.store import StoredCredentials

router = APIRouter(prefix="/credentials", tags=["credentials"])


def _pair(username: str, creds: StoredCredentials) -> Response:
    """The ``CredentialsResponse`` body, serialised once by pydantic-core.

    Returning a ``Response`` skips FastAPI's re-validation and re-encoding of the return
    value against ``response_model`` (which still documents the body in OpenAPI); on the hot
    path that second pass was measurable (issue 12).
    """
    body = CredentialsResponse(
        username=username, access_key=creds.access_key, secret_key=creds.secret_key
    )
    return Response(body.model_dump_json(), media_type="application/json")


@router.get("/", response_model=CredentialsResponse)
async def get_credentials(caller: CallerDep, services: ServicesDep) -> Response:
    """Your object-store access key and secret: created on first call, then cached."""
    # Known users (nearly every call) are answered by one prepared query; a miss goes to
    # ``get_or_issue``, which re-reads under the user's lock before issuing.
    found = await services.hot_credentials.fetch(caller.username)
    if found is None:
        found = await services.credentials.get_or_issue(caller.username, missed=True)
    return _pair(caller.username, found)


@router.post("/rotate", response_model=CredentialsResponse)
async def rotate_credentials(caller: CallerDep, services: ServicesDep) -> CredentialsResponse:
    """Replace your secret; the old one stops working at once."""
    creds = await services.credentials.rotate(
        caller.username, actor=caller.username, provision_missing=True
    )
    return CredentialsResponse(
        username=caller.username, access_key=creds.access_key, secret_key=creds.secret_key
    )
