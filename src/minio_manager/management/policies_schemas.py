"""Bodies of /management/migrate/* (policy regeneration and drift)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class PrincipalErrorModel(BaseModel):
    resource_type: str
    resource_name: str
    error: str


class RegeneratePoliciesResponse(BaseModel):
    users_total: int
    groups_total: int
    users_updated: int
    groups_updated: int
    errors: list[PrincipalErrorModel]
    performed_by: str
    timestamp: datetime


class DriftModel(BaseModel):
    resource_type: str
    resource_name: str
    problems: list[str]


class PolicyDriftResponse(BaseModel):
    principals_checked: int
    drifted_count: int
    drifted: list[DriftModel]
    errors: list[PrincipalErrorModel]
    checked_at: datetime
