"""Regenerate's agreement check (``provisioning/agreement.py``): a principal skips its
converge only when the store provably agrees with its records; every other case converges.

A converge is seen at its ``policy.rendered`` checkpoint (subject ``user:{name}``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from minio_manager import checkpoints
from minio_manager.db.tables import policy_documents
from minio_manager.governance.policies import canonical_document
from minio_manager.provisioning import outbox
from tests.integration.test_regenerate import TEMPLATE_ONLY, regenerate, share
from tests.support.api import issue
from tests.support.governance import db_rows
from tests.support.kbase import KBase, TestUser


@pytest.fixture
async def converged() -> AsyncIterator[list[str]]:
    """The subjects of every converge that reached rendering while the test ran."""
    seen: list[str] = []

    async def hook(name: str, subject: str) -> None:
        if name == "policy.rendered":
            seen.append(subject)

    checkpoints.install(hook)
    yield seen
    checkpoints.install(None)


@pytest.fixture
async def pair(client: httpx.AsyncClient, kbase: KBase) -> tuple[TestUser, TestUser]:
    """Two provisioned users, ``bob`` holding a share from ``alice``: the store agrees."""
    alice, bob = kbase.add_user(), kbase.add_user()
    await issue(client, alice)
    await issue(client, bob)
    await share(client, alice, "data/to-bob", {"with_users": [bob.name], "permission": "read"})
    return alice, bob


async def generation(services: Any, user: str) -> tuple[int, int]:
    rows = await db_rows(
        services,
        "SELECT generation, applied_generation FROM policy_outbox"
        " WHERE kind = 'user' AND name = :n",
        n=user,
    )
    return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)


async def test_agreeing_principals_skip_the_converge_and_drifted_ones_are_repaired(
    client: httpx.AsyncClient,
    services: Any,
    admin: TestUser,
    pair: tuple[TestUser, TestUser],
    converged: list[str],
) -> None:
    alice, bob = pair
    report = await regenerate(client, admin)
    ours = {alice.name, bob.name}
    assert not [e for e in report.get("errors") or [] if e["resource_name"] in ours], report
    assert f"user:{alice.name}" not in converged
    assert f"user:{bob.name}" not in converged

    home = f"user-home-policy-{bob.name}"
    expected = canonical_document(await services.store.get_policy(home))
    await services.store.put_policy(home, TEMPLATE_ONLY)  # drift behind the service's back
    converged.clear()
    await regenerate(client, admin)
    assert f"user:{bob.name}" in converged
    assert f"user:{alice.name}" not in converged
    assert canonical_document(await services.store.get_policy(home)) == expected

    # A detached document is drift too (the documents themselves are intact).
    await services.store.set_user_policies(bob.name, [home])
    converged.clear()
    await regenerate(client, admin)
    assert f"user:{bob.name}" in converged
    attached = set((await services.store.get_user(bob.name)).policies)
    assert attached == {home, f"user-system-policy-{bob.name}"}


async def test_a_pending_outbox_row_converges_even_when_the_store_agrees(
    client: httpx.AsyncClient,
    services: Any,
    admin: TestUser,
    pair: tuple[TestUser, TestUser],
    converged: list[str],
) -> None:
    _, bob = pair
    async with services.engine.begin() as conn:
        await outbox.bump(conn, [("user", bob.name)])
    bumped, applied = await generation(services, bob.name)
    assert bumped > applied
    await regenerate(client, admin)
    assert f"user:{bob.name}" in converged
    assert await generation(services, bob.name) == (bumped, bumped)  # marked applied


async def test_a_dirty_record_converges_even_when_the_store_agrees(
    client: httpx.AsyncClient,
    services: Any,
    admin: TestUser,
    pair: tuple[TestUser, TestUser],
    converged: list[str],
) -> None:
    _, bob = pair
    family = f"user-home-policy-{bob.name}"
    async with services.engine.begin() as conn:
        await conn.execute(
            update(policy_documents).where(policy_documents.c.family == family).values(dirty=True)
        )
    await regenerate(client, admin)
    assert f"user:{bob.name}" in converged
    rows = await db_rows(services, "SELECT dirty FROM policy_documents WHERE family = :f", f=family)
    assert rows and not any(dirty for (dirty,) in rows)  # the converge saved it clean


async def test_records_changed_during_the_check_send_the_principal_to_the_converge(
    client: httpx.AsyncClient,
    services: Any,
    admin: TestUser,
    pair: tuple[TestUser, TestUser],
    converged: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A change committed between the check's two reads of the outbox row (here: after the
    store was read) makes its proof void, whatever the store showed."""
    _, bob = pair
    principal = ("user", bob.name)
    original = outbox.generations
    reads = 0

    async def generations(conn: Any, principals: Sequence[tuple[str, str]]) -> Any:
        nonlocal reads
        if principal in principals:
            reads += 1
            if reads == 2:  # the second read: a concurrent change has just committed
                async with services.engine.begin() as other:
                    await outbox.bump(other, [principal])
        return await original(conn, principals)

    monkeypatch.setattr(outbox, "generations", generations)
    await regenerate(client, admin)
    assert reads == 2
    assert f"user:{bob.name}" in converged
    bumped, applied = await generation(services, bob.name)
    assert bumped == applied
