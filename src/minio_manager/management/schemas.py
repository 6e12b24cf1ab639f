"""Response bodies of /management users and groups (SPEC §4.5)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from minio_manager.credentials.schemas import S3KeyAliases
from minio_manager.enforcement import EnforcementState


class UserNamesResponse(BaseModel):
    usernames: list[str]
    total_count: int


class UserSummary(BaseModel):
    username: str
    access_key: str
    enabled: bool
    home_paths: list[str]
    groups: list[str]
    policies: list[str] = Field(description="Policies attached to the user itself")
    total_policies: int = Field(description="User policies plus those of the user's groups")


class UserListResponse(BaseModel):
    users: list[UserSummary]
    total_count: int
    retrieved_count: int
    page: int
    page_size: int
    total_pages: int
    has_next: bool
    has_prev: bool


class UserManagementResponse(S3KeyAliases):
    secret_key: str = Field(description="The secret now stored and applied")
    home_paths: list[str]
    groups: list[str]
    total_policies: int
    operation: str
    performed_by: str
    timestamp: datetime

    def __repr__(self) -> str:
        return f"UserManagementResponse(username={self.username!r}, secret_key=<redacted>)"


class ResourceDeleteResponse(EnforcementState):
    resource_type: str
    resource_name: str
    message: str
    performed_by: str
    timestamp: datetime


class RotationFailure(BaseModel):
    username: str
    error: str


class RotateAllResponse(BaseModel):
    total_count: int
    rotated_count: int
    failed_count: int
    rotated: list[str]
    failures: list[RotationFailure]
    complete: bool = True
    """False when the run stopped at an object-store outage: ``not_rotated`` were not tried."""
    not_rotated: list[str] = []
    message: str = "every issued credential was tried"
    performed_by: str
    timestamp: datetime


class GroupInfo(BaseModel):
    group_name: str
    members: list[str]
    member_count: int


class GroupListResponse(BaseModel):
    groups: list[GroupInfo]
    total_count: int


class GroupNamesResponse(BaseModel):
    group_names: list[str]
    total_count: int


class GroupManagementResponse(EnforcementState):
    group_name: str
    ro_group_name: str | None
    members: list[str]
    member_count: int
    policy_name: str
    operation: str
    performed_by: str
    timestamp: datetime
