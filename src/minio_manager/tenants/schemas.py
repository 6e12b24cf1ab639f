"""Request and response bodies of /tenants (SPEC §4.2)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from minio_manager.enforcement import EnforcementState

AccessLevel = Literal["read_write", "read_only"]
WEBSITE_MAX_LENGTH = 2048
WEBSITE_PATTERN = (
    r"^(?:[Hh][Tt][Tt][Pp][Ss]?://[^\s\x00-\x1f\x7f/?#@:\[\]][^\s\x00-\x1f\x7f/?#@]*"
    r"(?:[/?#][^\s\x00-\x1f\x7f]*)?)?$"
)
"""An http(s) URL with a host, no whitespace or control characters; empty clears the field.
The validator below applies the same rule with ``urlsplit``; the pattern states it in the
OpenAPI and is enforced first (422)."""
SINGLE_LINE = r"^[^\x00-\x1f\x7f]*$"
TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
"""No control characters (text may hold line breaks and tabs), stated in the OpenAPI; the
validators below say the same for anything that slips past."""


class TenantMetadataUpdate(BaseModel):
    """Editable tenant fields. Only the fields sent are changed; ``null`` or "" clears one."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    display_name: str | None = Field(default=None, max_length=256, pattern=SINGLE_LINE)
    description: str | None = Field(default=None, max_length=4096, pattern=TEXT)
    organization: str | None = Field(default=None, max_length=256, pattern=SINGLE_LINE)
    website: str | None = Field(
        default=None,
        max_length=WEBSITE_MAX_LENGTH,
        pattern=WEBSITE_PATTERN,
        description="An http(s) URL",
    )

    @field_validator("display_name", "description", "organization", "website")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("display_name", "organization")
    @classmethod
    def _single_line(cls, value: str | None) -> str | None:
        if value is not None and any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("description")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        allowed = {"\n", "\r", "\t"}
        if value is not None and any(
            (ord(ch) < 0x20 and ch not in allowed) or ord(ch) == 0x7F for ch in value
        ):
            raise ValueError("must not contain control characters other than line breaks and tabs")
        return value

    @field_validator("website")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if any(ch.isspace() or ord(ch) < 0x20 for ch in value):
            raise ValueError("must not contain whitespace or control characters")
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    def changes(self) -> dict[str, str | None]:
        """The fields the caller actually sent."""
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


class TenantMetadata(BaseModel):
    tenant_name: str
    display_name: str | None = None
    description: str | None = None
    website: str | None = None
    organization: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None


class TenantSummary(BaseModel):
    tenant_name: str
    display_name: str | None = None
    description: str | None = None
    website: str | None = None
    organization: str | None = None
    member_count: int
    is_member: bool
    is_steward: bool


class TenantMember(BaseModel):
    username: str
    display_name: str | None = None
    email: str | None = None
    access_level: AccessLevel
    is_steward: bool


class TenantMemberChange(TenantMember, EnforcementState):
    """Answer of adding or moving a member: the member, and whether the store agrees yet."""


class TenantSteward(BaseModel):
    username: str
    display_name: str | None = None
    email: str | None = None
    assigned_by: str
    assigned_at: datetime


class TenantStewardChange(TenantSteward, EnforcementState):
    """Answer of assigning a steward (who may have been added read-write)."""


class TenantStoragePaths(BaseModel):
    general_warehouse: str
    sql_warehouse: str
    namespace_prefix: str


class TenantDetail(BaseModel):
    metadata: TenantMetadata
    stewards: list[TenantSteward]
    members: list[TenantMember]
    member_count: int
    storage_paths: TenantStoragePaths
