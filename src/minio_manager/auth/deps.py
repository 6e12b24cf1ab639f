"""FastAPI dependencies: who is calling, and may they."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from minio_manager.bootstrap import Services
from minio_manager.caller import Caller
from minio_manager.errors import InvalidAuthHeader, MissingRole, MissingToken
from minio_manager.request_context import set_current_user

# A token is one run of visible ASCII; anything else cannot be a KBase token (and would not
# even fit in an HTTP header sent on to KBase).
_TOKEN_CHARS = re.compile(r"[\x21-\x7e]{1,4096}")


# Declares the bearer scheme in OpenAPI so Swagger UI shows an "Authorize" box; the header is
# parsed by ``bearer_token`` below, which reports our own error codes.
bearer_scheme = HTTPBearer(auto_error=False, description="KBase token")
BearerDoc = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


async def get_services(request: Request) -> Services:
    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
    # hop on every request for what is an attribute read (issue 12 profile of the hot path).
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if header is None or not header.strip():
        raise MissingToken("authorization header required")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or not _TOKEN_CHARS.fullmatch(token):
        raise InvalidAuthHeader("authorization header must be 'Bearer <token>'")
    return token


async def get_caller(request: Request, services: ServicesDep, _doc: BearerDoc) -> Caller:
    token = bearer_token(request)
    user = await services.auth.user_for_token(token)
    settings = services.settings
    missing = [r for r in settings.kbase_required_roles if r not in user.custom_roles]
    if missing:
        raise MissingRole(f"missing required role(s): {', '.join(missing)}")
    is_admin = any(r in user.custom_roles for r in settings.kbase_admin_roles)
    set_current_user(user.username)
    return Caller(username=user.username, is_admin=is_admin, token=token)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def require_admin(caller: CallerDep) -> Caller:
    if not caller.is_admin:
        raise MissingRole("this call needs an administrator")
    return caller


AdminDep = Annotated[Caller, Depends(require_admin)]
