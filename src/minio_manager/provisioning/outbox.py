"""The policy outbox: what the object store still has to be made to agree with.

Every change of records that affects what a principal may do bumps the principal's row *in
the same transaction* as the records (``bump``); membership changes are written as intents
(kind ``member``, name ``{group}/{user}``, ``desired`` in|out). A row is pending while
``generation > applied_generation``. Rows are never deleted, so generations only grow and
serve as fencing tokens.

``converge`` is the one way to enforce a row: it takes a PostgreSQL transaction-scoped
advisory lock on (kind, name) — it dies with the connection, so there is no expiry to outlive
— reads the generation, *then* the records (READ COMMITTED: records at least as new as the
generation), runs the writer, and the writer calls ``Fence.check`` on that same connection
before each store write: a dead connection means the lock is gone (stop). Records that
change meanwhile do not restart the render: what is written is at least as new as the
caller's own commit, and whoever bumped the generation renders again once it holds the lock.
With ``unless_applied`` (the enforcer's mode) a caller whose generation someone else already
applied while it waited writes nothing, so concurrent changes of one principal coalesce
instead of queueing one full render each.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import func, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from minio_manager.db.engine import transaction
from minio_manager.db.tables import policy_outbox
from minio_manager.errors import PrincipalBusy

log = logging.getLogger(__name__)
T = TypeVar("T")

USER, GROUP, MEMBER = "user", "group", "member"
IN, OUT = "in", "out"
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_CAP_SECONDS = 5.0
"""Retries back off exponentially up to this, so the store converges within seconds of
coming back."""

Principal = tuple[str, str]


def member_name(group: str, user: str) -> str:
    return f"{group}/{user}"


def split_member(name: str) -> tuple[str, str]:
    group, _, user = name.partition("/")
    return group, user


def describe(principal: Principal) -> str:
    return f"{principal[0]}:{principal[1]}"


# -- writes in the caller's transaction ------------------------------------------------------
async def bump(conn: AsyncConnection, principals: Iterable[Principal]) -> None:
    """Mark principals' policies as needing a render (call inside the records' transaction)."""
    await _upsert(conn, [(kind, name, None) for kind, name in sorted(set(principals))])


async def intend(conn: AsyncConnection, group: str, user: str, desired: str) -> Principal:
    """Record that ``user`` should be in (or out of) ``group``; returns the outbox key."""
    name = member_name(group, user)
    await _upsert(conn, [(MEMBER, name, desired)])
    return (MEMBER, name)


async def _upsert(conn: AsyncConnection, rows: list[tuple[str, str, str | None]]) -> None:
    if not rows:
        return
    # Sorted and unique: concurrent transactions bumping overlapping sets cannot deadlock.
    stmt = insert(policy_outbox).values(
        [
            {"kind": k, "name": n, "desired": d, "pending_since": func.now()}
            for k, n, d in sorted(set(rows))
        ]
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[policy_outbox.c.kind, policy_outbox.c.name],
        set_={
            "generation": policy_outbox.c.generation + 1,
            "desired": stmt.excluded.desired,
            "next_attempt_at": func.now(),
            "pending_since": func.coalesce(policy_outbox.c.pending_since, func.now()),
        },
    )
    await conn.execute(stmt)


async def leave_everything(
    conn: AsyncConnection, *, user: str | None = None, group: str | None = None
) -> None:
    """Turn every membership intent of a user (or of a group) being deleted into ``out``, so
    a pending ``in`` can never re-add a deleted user or re-create a deleted group."""
    pattern = f"%/{user}" if user is not None else f"{group}/%"
    await conn.execute(
        text(
            "UPDATE policy_outbox SET desired = 'out', generation = generation + 1,"
            " next_attempt_at = now(), pending_since = coalesce(pending_since, now())"
            " WHERE kind = 'member' AND desired = 'in' AND name LIKE :p"
        ),
        {"p": pattern.replace("_", r"\_")},
    )


# -- reads --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutboxRow:
    kind: str
    name: str
    desired: str | None
    generation: int
    applied_generation: int
    pending_since: datetime | None
    attempts: int
    last_error: str | None
    next_attempt_at: datetime


@dataclass(frozen=True)
class OutboxSummary:
    pending: int
    oldest_pending_seconds: float | None
    failing: int


_PENDING = policy_outbox.c.generation > policy_outbox.c.applied_generation


async def pending_rows(conn: AsyncConnection, limit: int = 500) -> list[OutboxRow]:
    rows = await conn.execute(
        select(policy_outbox)
        .where(_PENDING)
        .order_by(policy_outbox.c.pending_since, policy_outbox.c.kind, policy_outbox.c.name)
        .limit(limit)
    )
    return [OutboxRow(**r._mapping) for r in rows]


async def pending_principals(conn: AsyncConnection) -> set[Principal]:
    rows = await conn.execute(select(policy_outbox.c.kind, policy_outbox.c.name).where(_PENDING))
    return {(r.kind, r.name) for r in rows}


async def generations(
    conn: AsyncConnection, principals: Sequence[Principal]
) -> dict[Principal, tuple[int, int]]:
    """(generation, applied generation) of each principal; (0, 0) for one without a row."""
    if not principals:
        return {}
    rows = await conn.execute(
        select(
            policy_outbox.c.kind,
            policy_outbox.c.name,
            policy_outbox.c.generation,
            policy_outbox.c.applied_generation,
        ).where(tuple_(policy_outbox.c.kind, policy_outbox.c.name).in_(list(principals)))
    )
    found = {(r.kind, r.name): (int(r.generation), int(r.applied_generation)) for r in rows}
    return {p: found.get(p, (0, 0)) for p in principals}


async def summary(conn: AsyncConnection) -> OutboxSummary:
    row = (
        await conn.execute(
            text(
                "SELECT count(*) AS pending,"
                " extract(epoch FROM now() - min(pending_since)) AS oldest,"
                " count(*) FILTER (WHERE attempts > 0) AS failing"
                " FROM policy_outbox WHERE generation > applied_generation"
            )
        )
    ).one()
    oldest = float(row.oldest) if row.oldest is not None else None
    return OutboxSummary(int(row.pending), oldest, int(row.failing))


async def due(conn: AsyncConnection, limit: int) -> list[Principal]:
    """Pending rows whose next attempt is due, oldest schedule first."""
    rows = await conn.execute(
        select(policy_outbox.c.kind, policy_outbox.c.name)
        .where(_PENDING, policy_outbox.c.next_attempt_at <= func.now())
        .order_by(policy_outbox.c.next_attempt_at)
        .limit(limit)
    )
    return [(r.kind, r.name) for r in rows]


async def record_failure(engine: AsyncEngine, principal: Principal, error: str) -> None:
    """Count a failed attempt and schedule the next one (exponential backoff, capped)."""
    async with transaction(engine) as conn:
        await conn.execute(
            text(
                "UPDATE policy_outbox SET attempts = attempts + 1, last_error = :e,"
                " next_attempt_at = now() + least(:cap, :base * power(2, least(attempts, 10)))"
                " * interval '1 second'"
                " WHERE kind = :k AND name = :n AND generation > applied_generation"
            ),
            {
                "e": error[:200],
                "cap": BACKOFF_CAP_SECONDS,
                "base": BACKOFF_BASE_SECONDS,
                "k": principal[0],
                "n": principal[1],
            },
        )


# -- converge -----------------------------------------------------------------------------------
class Fence:
    """The generation a render started from; ``check`` runs before each store write."""

    def __init__(
        self, conn: AsyncConnection, principal: Principal, generation: int, desired: str | None
    ) -> None:
        self.conn = conn
        self.principal = principal
        self.generation = generation
        self.desired = desired

    async def check(self) -> None:
        """A round trip on the connection that holds the lock: if it died, the lock is gone
        and the database error stops the work before anything more is written."""
        await self.conn.execute(text("SELECT 1"))


@dataclass(frozen=True)
class _Row:
    generation: int
    applied: int
    desired: str | None


async def _read(conn: AsyncConnection, principal: Principal) -> _Row:
    row = (
        await conn.execute(
            select(
                policy_outbox.c.generation,
                policy_outbox.c.applied_generation,
                policy_outbox.c.desired,
            ).where(policy_outbox.c.kind == principal[0], policy_outbox.c.name == principal[1])
        )
    ).first()
    if row is None:
        return _Row(0, 0, None)
    return _Row(int(row.generation), int(row.applied_generation), row.desired)


_LOCK_KEY = "hashtext(:k), hashtext(:n)"


async def _lock(conn: AsyncConnection, principal: Principal, wait_seconds: float | None) -> None:
    """Try the lock first (one round trip, the usual case); only a held lock costs the
    bounded wait (three: set the wait limit, wait, reset it)."""
    params = {"k": principal[0], "n": principal[1]}
    got = (
        await conn.execute(text(f"SELECT pg_try_advisory_xact_lock({_LOCK_KEY})"), params)
    ).scalar()
    if got:
        return
    if wait_seconds is None:
        raise PrincipalBusy(f"{describe(principal)} is being enforced elsewhere")
    await conn.execute(
        text("SELECT set_config('lock_timeout', :t, true)"), {"t": f"{int(wait_seconds * 1000)}ms"}
    )
    try:
        await conn.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"), params)
    except DBAPIError as exc:
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if sqlstate == "55P03":  # lock_not_available: our wait limit ran out
            raise PrincipalBusy(
                f"another update of {describe(principal)} is taking too long"
            ) from None
        raise
    await conn.execute(text("SELECT set_config('lock_timeout', '0', true)"))


_MARK_APPLIED = text(
    "UPDATE policy_outbox SET applied_generation = greatest(applied_generation, :g),"
    " attempts = CASE WHEN generation <= greatest(applied_generation, :g)"
    " THEN 0 ELSE attempts END,"
    " last_error = CASE WHEN generation <= greatest(applied_generation, :g)"
    " THEN NULL ELSE last_error END,"
    " pending_since = CASE WHEN generation <= greatest(applied_generation, :g)"
    " THEN NULL ELSE pending_since END"
    " WHERE kind = :k AND name = :n"
)


async def _mark_applied(conn: AsyncConnection, principal: Principal, generation: int) -> None:
    await conn.execute(_MARK_APPLIED, {"g": generation, "k": principal[0], "n": principal[1]})


async def converge(
    engine: AsyncEngine,
    principal: Principal,
    writer: Callable[[Fence], Awaitable[T]],
    *,
    wait_seconds: float | None,
    unless_applied: bool = False,
) -> T | None:
    """Run ``writer`` under the principal's advisory lock for the current generation, then
    mark that generation applied (all in one transaction).

    ``wait_seconds`` None: try the lock once (``PrincipalBusy`` if held — the reconciler's
    skip-locked); otherwise wait at most that long. ``unless_applied``: the generation read
    *before* waiting covers the caller's committed records; if another holder applied it (or
    a newer one) meanwhile, return None without writing.
    """
    async with transaction(engine) as conn:
        # The generation before waiting matters only to ``unless_applied``.
        target = (await _read(conn, principal)).generation if unless_applied else 0
        await _lock(conn, principal, wait_seconds)
        row = await _read(conn, principal)
        if unless_applied and row.applied >= target:
            return None
        result = await writer(Fence(conn, principal, row.generation, row.desired))
        if row.generation:
            # No row: nothing was ever bumped, and marking generation 0 would change nothing.
            await _mark_applied(conn, principal, row.generation)
        return result
