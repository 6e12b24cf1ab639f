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

from typing import Annotated, Any

from fastapi import Path
from starlette.convertors import StringConvertor, register_url_convertor

from minio_manager.errors import (
    GroupOperationError,
    ServiceError,
    TenantBadRequest,
    UserOperationError,
)
from minio_manager.governance.layout import GLOBAL_GROUP, READ_ONLY_SUFFIX
from minio_manager.governance.naming import (
    GROUP_MAX_LENGTH,
    GROUP_MIN_LENGTH,
    RESERVED_GROUP_NAMES,
    RESERVED_USERNAMES,
    USERNAME_MAX_LENGTH,
    USERNAME_MIN_LENGTH,
    validate_group_name,
    validate_username,
)

USERNAME_PATTERN = r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$"
"""Letters, digits and single ``.``/``_``/``-`` between them: first and last alphanumeric, no
two separators in a row (SPEC §1). Written without look-arounds so any JSON Schema tool (and
schemathesis' generator) can use it."""

STORE_USERNAME_MIN_LENGTH = max(USERNAME_MIN_LENGTH, 3)
"""MinIO refuses access keys (= user names) shorter than 3 characters, so a 2-character name
can never be created or found; the path rule says so instead of a later 400 or 404."""

GROUP_PATTERN = r"^[a-z][a-z0-9]+$"
GROUP_RO_MAX_LENGTH = GROUP_MAX_LENGTH + len(READ_ONLY_SUFFIX)
"""A read-only twin ``{g}ro`` of the longest base name."""
ANY_GROUP_PATTERN = rf"^[a-z][a-z0-9]{{1,{GROUP_MAX_LENGTH - 1}}}(?:{READ_ONLY_SUFFIX})?$"
"""A base name of 2-62 characters, or one followed by ``ro`` (so 63-64 only as a twin)."""


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in word)


# JSON Schema ``not``: the reserved names and other domain refusals, declared so that a client
# (and a fuzzer) knows them; the service answers them 400 with the domain code, as any name
# rule. Not enforced by FastAPI (it ignores ``not``) but by governance.naming.
_RESERVED_USERS = {
    "not": {"pattern": "^(?:" + "|".join(_any_case(n) for n in sorted(RESERVED_USERNAMES)) + ")$"}
}
_RESERVED_BASES = sorted(RESERVED_GROUP_NAMES)
_NOT_A_BASE_GROUP = {
    "not": {"anyOf": [{"enum": _RESERVED_BASES}, {"pattern": f"{READ_ONLY_SUFFIX}$"}]}
}
_NOT_ANY_GROUP = {
    "not": {
        "anyOf": [
            {"enum": _RESERVED_BASES + [n + READ_ONLY_SUFFIX for n in _RESERVED_BASES]},
            # ``ro`` and ``xro`` would be twins of a base shorter than 2 characters.
            {"pattern": f"^[a-z]?{READ_ONLY_SUFFIX}$"},
        ]
    }
}

Username = Annotated[
    str,
    Path(
        min_length=STORE_USERNAME_MIN_LENGTH,
        max_length=USERNAME_MAX_LENGTH,
        pattern=USERNAME_PATTERN,
        description="A user name (SPEC §1); reserved names are refused with 400 / 20030",
        json_schema_extra=_RESERVED_USERS,
    ),
]
GroupName = Annotated[
    str,
    Path(
        min_length=GROUP_MIN_LENGTH,
        max_length=GROUP_RO_MAX_LENGTH,
        pattern=ANY_GROUP_PATTERN,
        description="A group `g` or its read-only twin `g`ro; reserved names are 400 / 20040",
        json_schema_extra=_NOT_ANY_GROUP,
    ),
]
TenantName = Annotated[
    str,
    Path(
        min_length=GROUP_MIN_LENGTH,
        max_length=GROUP_MAX_LENGTH,
        pattern=GROUP_PATTERN,
        description="A tenant's base group name; `ro` forms and reserved names are 400 / 40010",
        json_schema_extra=_NOT_A_BASE_GROUP,
    ),
]


LISTING = "names"
NOT_LISTING = "not_listing"
"""Path convertor of ``/management/users/{username}`` and ``/management/groups/{group}``: any
segment but ``names``. Those two paths are also the listings ``…/users/names`` and
``…/groups/names`` (GET); without it, ``POST /management/users/names`` would create a user
``names`` while the OpenAPI's path item ``/management/users/names`` has only GET. With it the
router answers 405 (``Allow: GET``) there, as the document says, and the names are declared
refused (``not``) in the templated paths."""


class _NotListing(StringConvertor):
    regex = "(?!" + LISTING + "$)[^/]+"


register_url_convertor(NOT_LISTING, _NotListing())


def _with_listing(rule: dict[str, Any]) -> dict[str, Any]:
    return {"not": {"anyOf": [rule["not"], {"enum": [LISTING]}]}}


ManagedUsername = Annotated[
    str,
    Path(
        min_length=STORE_USERNAME_MIN_LENGTH,
        max_length=USERNAME_MAX_LENGTH,
        pattern=USERNAME_PATTERN,
        description="A user name (SPEC §1); reserved names are 400 / 20030 (`names` is the "
        "listing)",
        json_schema_extra=_with_listing(_RESERVED_USERS),
    ),
]
NewGroupName = Annotated[
    str,
    Path(
        min_length=GROUP_MIN_LENGTH,
        max_length=GROUP_MAX_LENGTH,
        pattern=GROUP_PATTERN,
        description="A base group name; names ending in `ro` and reserved names are 400 / 20040 "
        "(`names` is the listing)",
        json_schema_extra=_with_listing(_NOT_A_BASE_GROUP),
    ),
]
DeletableGroupName = Annotated[
    str,
    Path(
        min_length=GROUP_MIN_LENGTH,
        max_length=GROUP_MAX_LENGTH,
        pattern=GROUP_PATTERN,
        description="A base group name (its `ro` twin goes with it); `ro` forms, reserved "
        f"names and `{GLOBAL_GROUP}` are 400 / 20040 (`names` is the listing)",
        json_schema_extra={
            "not": {"anyOf": [_NOT_A_BASE_GROUP["not"], {"enum": [LISTING, GLOBAL_GROUP]}]}
        },
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
    return UserOperationError(
        f"Invalid username {value[:80]!r}: the object store needs at least "
        f"{STORE_USERNAME_MIN_LENGTH} characters"
    )


_BY_NAME = {"username": _user_error, "group": _group_error, "tenant": _tenant_error}


def domain_error_for_path(name: str, value: object) -> ServiceError | None:
    """The domain error for a path parameter that failed its declared rules, if it is one."""
    build = _BY_NAME.get(name)
    if build is None or not isinstance(value, str):
        return None
    return build(value)


TENANT_QUERY_SCHEMA: dict[str, Any] = {
    "pattern": rf"^[a-z][a-z0-9]{{1,{GROUP_MAX_LENGTH - 1}}}$",
    **_NOT_A_BASE_GROUP,
}
"""``?tenant=`` of /workspaces/me/namespace-prefix: declared like ``TenantName`` but checked by
the service (400 / 40010, as before); FastAPI only enforces its 1-64 length (422)."""
