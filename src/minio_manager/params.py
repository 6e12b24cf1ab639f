"""Path parameters with their rules, so the OpenAPI states what the service really accepts.

Each type carries the character pattern and length of SPEC §1, enforced by FastAPI before the
route runs. A value that breaks them is still answered with the domain code the service has
always given for a bad name (400: 20030 user, 20040 group, 40010 tenant), not FastAPI's
422: ``domain_error_for_path`` re-runs the domain check on the raw value to build that answer
(see docs/decisions.md, "Request limits and the OpenAPI"). Rules beyond the pattern (reserved
names, the ``ro`` form where a base name is needed) stay in ``governance.naming`` and answer
the same codes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from minio_manager.errors import (
    GroupOperationError,
    ServiceError,
    TenantBadRequest,
    UserOperationError,
)
from minio_manager.governance.naming import (
    GROUP_MAX_LENGTH,
    GROUP_MIN_LENGTH,
    USERNAME_MAX_LENGTH,
    USERNAME_MIN_LENGTH,
    validate_group_name,
    validate_username,
)

USERNAME_PATTERN = r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$"
"""Letters, digits and single ``.``/``_``/``-`` between them: first and last alphanumeric, no
two separators in a row (SPEC §1). Written without look-arounds so any JSON Schema tool (and
schemathesis' generator) can use it."""

GROUP_PATTERN = r"^[a-z][a-z0-9]+$"
GROUP_RO_MAX_LENGTH = GROUP_MAX_LENGTH + 2
"""A read-only twin ``{g}ro`` of the longest base name."""

Username = Annotated[
    str,
    Path(
        min_length=USERNAME_MIN_LENGTH,
        max_length=USERNAME_MAX_LENGTH,
        pattern=USERNAME_PATTERN,
        description="A user name (SPEC §1); reserved names are refused with 400 / 20030",
    ),
]
GroupName = Annotated[
    str,
    Path(
        min_length=GROUP_MIN_LENGTH,
        max_length=GROUP_RO_MAX_LENGTH,
        pattern=GROUP_PATTERN,
        description="A group `g` or its read-only twin `g`ro; reserved names are 400 / 20040",
    ),
]
NewGroupName = Annotated[
    str,
    Path(
        min_length=GROUP_MIN_LENGTH,
        max_length=GROUP_MAX_LENGTH,
        pattern=GROUP_PATTERN,
        description="A base group name; names ending in `ro` and reserved names are 400 / 20040",
    ),
]
TenantName = Annotated[
    str,
    Path(
        min_length=GROUP_MIN_LENGTH,
        max_length=GROUP_MAX_LENGTH,
        pattern=GROUP_PATTERN,
        description="A tenant's base group name; `ro` forms and reserved names are 400 / 40010",
    ),
]


def _tenant_error(value: str) -> ServiceError:
    try:
        validate_group_name(value)
    except GroupOperationError as exc:
        return TenantBadRequest(exc.message)
    return TenantBadRequest(f"Invalid tenant name {value[:80]!r}: must be a base group name")


def _group_error(value: str) -> ServiceError:
    for creation in (False, True):
        try:
            validate_group_name(value, for_creation=creation)
        except GroupOperationError as exc:
            return exc
    return GroupOperationError(f"Invalid group name {value[:80]!r}")


def _user_error(value: str) -> ServiceError:
    try:
        validate_username(value)
    except UserOperationError as exc:
        return exc
    return UserOperationError(f"Invalid username {value[:80]!r}")


_BY_NAME = {"username": _user_error, "group": _group_error, "tenant": _tenant_error}


def domain_error_for_path(name: str, value: object) -> ServiceError | None:
    """The domain error for a path parameter that failed its declared rules, if it is one."""
    build = _BY_NAME.get(name)
    if build is None or not isinstance(value, str):
        return None
    return build(value)
