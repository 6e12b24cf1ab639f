"""Request and response bodies of /sharing (SPEC §4.3; field names kept from the reference)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from minio_manager.enforcement import EnforcementState

MAX_TARGETS = 500
"""Per list and call: one request stays one bounded transaction and render."""
MAX_PATH_LENGTH = 4096
"""A bound on what is read at all (422 past it). A valid path is far shorter (``s3a://`` + a
bucket ≤ 63 + ``/`` + a key ≤ 1024, SPEC §1); a key over 1024 below this bound keeps its
domain answer, 400 / 20015, as before."""
MAX_NAME_LENGTH = 64
"""User and group names (``{g}ro`` included) are at most 64 characters (SPEC §1)."""

Path = Annotated[
    str,
    Field(
        max_length=MAX_PATH_LENGTH,
        description="s3:// or s3a:// path inside your home; the other rules of SPEC §1 (bucket, "
        "no `//`, `..`, wildcards, encoded traversal) are answered 400 (20015, 30020)",
        # Declared, not enforced here: the service's own check answers 400 / 20015, as before.
        json_schema_extra={"pattern": "^[Ss]3[Aa]?://"},
        examples=["s3a://cdm-lake/users-general-warehouse/alice/data/exp1/"],
    ),
]
Name = Annotated[str, Field(max_length=MAX_NAME_LENGTH)]
Names = Annotated[list[Name], Field(default_factory=list, max_length=MAX_TARGETS)]


class _Request(BaseModel):
    # Unknown keys are refused (422): a misspelt "with_user" must not silently share nothing.
    model_config = ConfigDict(extra="forbid")


class ShareRequest(_Request):
    path: Path
    with_users: Names
    with_groups: Names
    permission: Literal["read", "write"] = "write"


class UnshareRequest(_Request):
    path: Path
    from_users: Names
    from_groups: Names


class PathRequest(_Request):
    path: Path


class ShareResponse(EnforcementState):
    path: str
    shared_with_users: list[str]
    shared_with_groups: list[str]
    success_count: int
    errors: list[str]
    shared_by: str
    shared_at: datetime


class UnshareResponse(EnforcementState):
    path: str
    unshared_from_users: list[str]
    unshared_from_groups: list[str]
    success_count: int
    errors: list[str]
    unshared_by: str
    unshared_at: datetime


class PublicAccessResponse(EnforcementState):
    path: str
    is_public: bool


class PathAccessResponse(BaseModel):
    path: str
    users: list[str]
    groups: list[str]
    public: bool
