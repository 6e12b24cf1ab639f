"""The answer rule for every call that changes records (docs/decisions.md, "Answers").

PostgreSQL cannot commit → 503, nothing recorded. Records committed and enforced → the
route's usual status, ``enforcement: applied``. Records committed but the store not yet
agreeing (store down, lock wait exceeded, lock lost) → 202 with ``enforcement: pending`` and
the outbox rows left, which a reconciler finishes within seconds of the store returning.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from fastapi import Response
from pydantic import BaseModel, Field

from minio_manager.provisioning.outbox import Principal, describe

ACCEPTED = 202
ACCEPTED_RESPONSE: dict[int | str, dict[str, Any]] = {
    ACCEPTED: {
        "description": (
            "The change is recorded but not yet enforced in the object store "
            '("enforcement": "pending"); it is applied automatically within seconds of the '
            "store being reachable"
        )
    }
}


class EnforcementState(BaseModel):
    """Added to the body of every call that changes records."""

    enforcement: Literal["applied", "pending"] = "applied"
    pending_principals: list[str] = Field(
        default_factory=list, description="outbox rows (kind:name) not yet enforced"
    )


class PendingAnswer(EnforcementState):
    """Body of a 202 from a route that otherwise answers 204 without a body."""

    message: str


def state(pending: Sequence[Principal]) -> dict[str, Any]:
    """The ``EnforcementState`` fields for a response model's constructor."""
    return {
        "enforcement": "pending" if pending else "applied",
        "pending_principals": sorted(describe(p) for p in pending),
    }


def set_status(response: Response, pending: Sequence[Principal]) -> None:
    if pending:
        response.status_code = ACCEPTED


def pending_answer(pending: Sequence[Principal], what: str) -> PendingAnswer:
    return PendingAnswer(
        message=f"{what} is recorded; the object store will be updated automatically",
        **state(pending),
    )
