"""/management/migrate: re-render every policy from records, and report drift (admin)."""

from __future__ import annotations

from fastapi import APIRouter

from minio_manager.auth.deps import AdminDep, ServicesDep
from minio_manager.db.engine import transaction
from minio_manager.management.policies_schemas import (
    DriftModel,
    OutboxResponse,
    OutboxRowModel,
    PolicyDriftResponse,
    PrincipalErrorModel,
    RegeneratePoliciesResponse,
)
from minio_manager.provisioning import outbox
from minio_manager.provisioning.regenerate import Drift, PrincipalError

router = APIRouter(prefix="/management/migrate", tags=["management"])
outbox_router = APIRouter(prefix="/management", tags=["management"])


def _drift(items: list[Drift]) -> list[DriftModel]:
    return [
        DriftModel(
            resource_type=d.resource_type, resource_name=d.resource_name, problems=d.problems
        )
        for d in items
    ]


def _errors(errors: list[PrincipalError]) -> list[PrincipalErrorModel]:
    return [
        PrincipalErrorModel(
            resource_type=e.resource_type, resource_name=e.resource_name, error=e.error
        )
        for e in errors
    ]


@router.post("/regenerate-policies", response_model=RegeneratePoliciesResponse)
async def regenerate_policies(
    caller: AdminDep, services: ServicesDep
) -> RegeneratePoliciesResponse:
    """Re-render every user's and group's policies from the templates and share records.

    Idempotent and safe to repeat: shares live in PostgreSQL, so none is lost. Failures of
    single principals are listed and do not stop the others.
    """
    report = await services.regenerator.regenerate(caller.username)
    return RegeneratePoliciesResponse(
        users_total=report.users_total,
        groups_total=report.groups_total,
        users_updated=report.users_updated,
        groups_updated=report.groups_updated,
        errors=_errors(report.errors),
        performed_by=caller.username,
        timestamp=report.at,
    )


@router.get("/policy-drift", response_model=PolicyDriftResponse)
async def policy_drift(_: AdminDep, services: ServicesDep) -> PolicyDriftResponse:
    """Compare the stored policies with what the records render to (changes nothing).

    Repair any drift with ``POST /management/migrate/regenerate-policies``.
    """
    report = await services.regenerator.drift()
    return PolicyDriftResponse(
        principals_checked=report.principals_checked,
        drifted_count=len(report.drifted),
        drifted=_drift(report.drifted),
        pending_count=len(report.pending),
        pending=_drift(report.pending),
        errors=_errors(report.errors),
        checked_at=report.at,
    )


@outbox_router.get("/outbox", response_model=OutboxResponse)
async def pending_outbox(_: AdminDep, services: ServicesDep) -> OutboxResponse:
    """Changes recorded but not yet enforced in the object store (oldest first).

    The reconciler of every replica applies them; ``attempts`` and ``last_error`` show rows
    that keep failing (e.g. while the store is down).
    """
    async with transaction(services.engine) as conn:
        rows = await outbox.pending_rows(conn)
        totals = await outbox.summary(conn)
    return OutboxResponse(
        pending_count=totals.pending,
        failing_count=totals.failing,
        oldest_pending_seconds=totals.oldest_pending_seconds,
        rows=[OutboxRowModel(**vars(r)) for r in rows],
    )
