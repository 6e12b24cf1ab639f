"""Request and response bodies of /sharing (SPEC §4.3; field names kept from the reference)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from minio_manager.enforcement import EnforcementState

MAX_TARGETS = 500
"""Per list and call: one request stays one bounded transaction and render."""

Path = Annotated[
    str,
    Field(
        description="s3:// or s3a:// path inside your home",
        examples=["s3a://cdm-lake/users-general-warehouse/alice/data/exp1/"],
    ),
]
Names = Annotated[list[str], Field(default_factory=list, max_length=MAX_TARGETS)]


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
