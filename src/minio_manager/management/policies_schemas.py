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
    pending_count: int = 0
    pending: list[DriftModel] = []
    """Principals with outbox work not yet applied: a difference there is expected and is
    being repaired by the reconciler; ``drifted`` lists only real drift."""
    errors: list[PrincipalErrorModel]
    checked_at: datetime


class OutboxRowModel(BaseModel):
    kind: str
    name: str
    desired: str | None
    generation: int
    applied_generation: int
    pending_since: datetime | None
    attempts: int
    last_error: str | None
    next_attempt_at: datetime


class OutboxResponse(BaseModel):
    pending_count: int
    failing_count: int
    oldest_pending_seconds: float | None
    rows: list[OutboxRowModel]
    """At most 500 pending rows, oldest first."""
