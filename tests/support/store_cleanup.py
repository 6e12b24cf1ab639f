"""Keep an AWS-IAM-API store (SeaweedFS) small during a run: remove what each test created.

SeaweedFS 4.48 answers most user and group writes only after pushing every identity and group
to its S3 cache one by one, each push merging the whole configuration again, within a 10 s
deadline (docs/backends.md, "SeaweedFS: IAM writes slow down with the square of the store").
Tests never delete the users their logins create, so without this the store grows by a few
hundred users in a run and every such write ends up taking the full 10 s.

Each user and group is first removed with the bare ``DeleteUser`` / ``DeleteGroup``: SeaweedFS
drops the user's keys, memberships and attachments itself, so one write (one full save) does
what the port's ``delete_user`` does in three to five (it removes each first, for AWS, which
refuses with ``DeleteConflict``; on such a refusal the port's delete is used). Inline
policies SeaweedFS would keep are harmless here: test names are random, never created again.

What is removed from the store is also forgotten by the test database (credentials, shares,
outbox rows, tenants of those names), as if it had never existed: otherwise a later
whole-store operation (``regenerate``, ``rotate --all``) would meet principals PostgreSQL
knows and the store does not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass

import asyncpg

from minio_manager.governance.layout import GLOBAL_GROUP, read_only_group
from minio_manager.objectstore.awsclients import AwsClients, call
from minio_manager.objectstore.errors import StoreBusy, StoreRejected, StoreUnavailable
from minio_manager.objectstore.port import ObjectStore
from tests.support.stack import connect, store_var

KEPT_GROUPS = frozenset({GLOBAL_GROUP, read_only_group(GLOBAL_GROUP)})
"""Every user's groups, created by the first login of a run: never a test's to remove (the
adapter creates a group once per process and would not create it again)."""
PARALLEL = 4
"""Deletes at once: SeaweedFS serialises IAM writes under one lock anyway."""


@dataclass(frozen=True)
class Principals:
    users: frozenset[str]
    groups: frozenset[str]
    policies: frozenset[str]


def admin_clients(env: dict[str, str]) -> AwsClients:
    """IAM/S3 clients with the store's admin pair (for the bare deletes)."""
    return AwsClients(
        store_var(env, "OBJECT_STORE_ENDPOINT"),
        store_var(env, "OBJECT_STORE_ACCESS_KEY"),
        store_var(env, "OBJECT_STORE_SECRET_KEY"),
        region="us-east-1",
        timeout_seconds=60.0,
        max_connections=PARALLEL * 2,
    )


async def _delete_user(store: ObjectStore, clients: AwsClients, name: str) -> None:
    iam = await clients.iam()
    try:
        await call("iam:DeleteUser", iam.delete_user(UserName=name))
    except StoreRejected as exc:
        if exc.not_found:
            return
        await store.delete_user(name)  # AWS: DeleteConflict until keys etc. are gone


async def _delete_group(store: ObjectStore, clients: AwsClients, name: str) -> None:
    iam = await clients.iam()
    try:
        await call("iam:DeleteGroup", iam.delete_group(GroupName=name))
    except StoreRejected as exc:
        if exc.not_found:
            return
        await store.delete_group(name)


async def snapshot(store: ObjectStore) -> Principals:
    """Every user, group and named policy the store holds now."""
    users, groups, policies = await asyncio.gather(
        store.list_users(), store.list_groups(), store.list_policies()
    )
    return Principals(frozenset(users), frozenset(groups), frozenset(policies))


async def remove_created_since(
    store: ObjectStore, clients: AwsClients, before: Principals
) -> Principals:
    """Delete the users, groups and policies that are not in ``before``; what was removed.

    Users and groups go first (the adapter detaches their policies), then the policies they
    left unattached. A delete the store refuses (a policy still attached elsewhere) is left:
    this is housekeeping, not a check.
    """
    now = await snapshot(store)
    created = Principals(
        now.users - before.users,
        now.groups - before.groups - KEPT_GROUPS,
        now.policies - before.policies,
    )
    slots = asyncio.Semaphore(PARALLEL)

    async def quietly(work: Awaitable[None]) -> None:
        async with slots:
            with contextlib.suppress(StoreRejected, StoreUnavailable, StoreBusy):
                await work

    await asyncio.gather(*(quietly(_delete_user(store, clients, u)) for u in sorted(created.users)))
    await asyncio.gather(
        *(quietly(_delete_group(store, clients, g)) for g in sorted(created.groups))
    )
    await asyncio.gather(*(quietly(store.delete_policy(p)) for p in sorted(created.policies)))
    return created


FORGET_USERS = (
    "DELETE FROM user_credentials WHERE username = ANY($1)",
    "DELETE FROM managed_users WHERE username = ANY($1)",
    "DELETE FROM user_profiles WHERE username = ANY($1)",
    "DELETE FROM shares WHERE owner = ANY($1) OR (target_type = 'user' AND target_name = ANY($1))",
    "DELETE FROM policy_outbox WHERE kind = 'user' AND name = ANY($1)",
    "DELETE FROM policy_outbox WHERE kind = 'member' AND split_part(name, '/', 2) = ANY($1)",
)
FORGET_GROUPS = (
    "DELETE FROM shares WHERE target_type = 'group' AND target_name = ANY($1)",
    "DELETE FROM policy_outbox WHERE kind = 'group' AND name = ANY($1)",
    "DELETE FROM policy_outbox WHERE kind = 'member' AND split_part(name, '/', 1) = ANY($1)",
    "DELETE FROM tenant_metadata WHERE tenant_name = ANY($1)",
    "DELETE FROM store_groups WHERE name = ANY($1)",
)


async def forget(env: dict[str, str], database: str, removed: Principals) -> None:
    """Drop the test database's rows about ``removed`` (no database yet: nothing to do)."""
    if not removed.users and not removed.groups:
        return
    try:
        conn = await connect(env, database)
    except asyncpg.InvalidCatalogNameError:
        return
    try:
        async with conn.transaction():
            for statement in FORGET_USERS:
                await conn.execute(statement, sorted(removed.users))
            for statement in FORGET_GROUPS:
                await conn.execute(statement, sorted(removed.groups))
    finally:
        await conn.close()
