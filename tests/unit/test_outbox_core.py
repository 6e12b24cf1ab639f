"""Pure parts of the outbox: keys of membership intents, the answer rule, checkpoints."""

from __future__ import annotations

import asyncio

from minio_manager import checkpoints
from minio_manager.enforcement import pending_answer, state
from minio_manager.errors import ObjectStoreUnavailable
from minio_manager.provisioning.outbox import describe, member_name, split_member
from minio_manager.provisioning.reconciler import error_code


def test_member_keys_round_trip() -> None:
    name = member_name("teamro", "a_user")
    assert name == "teamro/a_user"
    assert split_member(name) == ("teamro", "a_user")
    assert describe(("member", name)) == "member:teamro/a_user"


def test_state_is_applied_only_without_pending_rows() -> None:
    assert state([]) == {"enforcement": "applied", "pending_principals": []}
    assert state([("user", "bob"), ("group", "g")]) == {
        "enforcement": "pending",
        "pending_principals": ["group:g", "user:bob"],
    }
    body = pending_answer([("member", "t/u")], "the removal")
    assert body.enforcement == "pending"
    assert "recorded" in body.message


def test_error_code_is_short_and_names_no_detail() -> None:
    error = ObjectStoreUnavailable("the object store failed at http://host:9000/secret-path")
    assert error_code(error) == "object_store_unavailable (20050)"
    assert error_code(RuntimeError("password=hunter2")) == "RuntimeError"


def test_checkpoints_are_no_ops_until_a_hook_is_installed() -> None:
    seen: list[tuple[str, str]] = []

    async def hook(name: str, subject: str) -> None:
        seen.append((name, subject))

    async def run() -> None:
        await checkpoints.checkpoint("a", "x")
        checkpoints.install(hook)
        try:
            await checkpoints.checkpoint("b", "y")
        finally:
            checkpoints.install(None)
        await checkpoints.checkpoint("c", "z")

    asyncio.run(run())
    assert seen == [("b", "y")]
