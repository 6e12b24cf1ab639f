"""Provisioning of a user in the object store (SPEC §1–§2), idempotent end to end.

Every step creates-or-overwrites, so running it again finishes a half-done earlier attempt.
The credential cache row is written by the caller only after this succeeds. A secret is only
ever set for a user this service manages (``provisioning/managed.py``).
"""

from __future__ import annotations

import asyncio
import logging

from minio_manager.admission import FairGate
from minio_manager.errors import UserOperationError
from minio_manager.governance.layout import GLOBAL_GROUP, Layout
from minio_manager.governance.naming import validate_username
from minio_manager.objectstore.errors import Refusal, StoreRejected
from minio_manager.objectstore.port import AccessKey, ObjectStore, StoreObject
from minio_manager.observability import metrics
from minio_manager.provisioning.batching import GroupJoinBatcher
from minio_manager.provisioning.groups import GroupProvisioner
from minio_manager.provisioning.managed import ManagedUsers
from minio_manager.provisioning.policy_sync import PolicySync, settle
from minio_manager.request_context import current_request_id

log = logging.getLogger(__name__)

REFUSED_USER_REASONS = {
    Refusal.INVALID_NAME: "it does not accept this name as a user name"
    " (MinIO needs at least 3 characters)",
}
"""Our own words for the store's refusals of a user; its raw text stays in the log."""

USER_README = """Welcome, {user}.

This is your personal workspace in the data lakehouse.

  {general}   general storage (data/, notebooks/, shared/)
  {sql}   Spark SQL warehouse; create databases named {namespace}<name>

Only you can write here. Share a path with others through the MinIO Manager /sharing API.
"""


class UserProvisioner:
    def __init__(
        self,
        store: ObjectStore,
        layout: Layout,
        policies: PolicySync,
        groups: GroupProvisioner,
        managed: ManagedUsers,
        *,
        admission: FairGate | None = None,
    ) -> None:
        self._store = store
        self._admission = admission or FairGate(8, wait_seconds=300.0, what="first logins")
        self._joins = GroupJoinBatcher(store)
        self._layout = layout
        self._policies = policies
        self._groups = groups
        self._managed = managed

    async def provision(
        self, user: str, secret: str, keep: AccessKey | None = None, *, absent: bool = False
    ) -> AccessKey:
        """Create (or repair) the user; returns the pair the store accepts (``set_user``).

        ``absent``: the caller found no such store user under the credential lock it still
        holds (every deletion holds it too), so the user is created now and is known to exist
        with nothing attached afterwards: neither the managed-user guard nor the policy
        render reads its ``user-info`` again (two admin calls off a first login's path).

        Runs inside the replica's admission gate: a login storm queues here in arrival order
        instead of every first login competing for CPU, pools and MinIO at once (issue 12).
        Joining ``globalusers`` is an idempotent membership call outside any policy lock,
        batched with the other logins in flight (``GroupJoinBatcher``); the group itself
        (and its policy) is set up once per process, not per user.
        """
        validate_username(user)
        async with self._admission.slot():
            await asyncio.gather(self._groups.ensure_buckets(), self._groups.ensure_global_groups())
            if absent:
                # The markers need neither the user nor its policies: they are written while
                # the user is created (a first login's longest branch: seven S3 PUTs). Should
                # the store then refuse the name, they stay as empty objects that grant nothing.
                created = asyncio.ensure_future(self._create(user, secret, keep))
                await settle(created, self._store.put_objects(self._markers(user)))
                pair = created.result()
            else:
                pair = await self.set_secret(user, secret, keep)
                await asyncio.gather(
                    self._policies.sync_user(user, rewrite=True),
                    self._joins.join(GLOBAL_GROUP, user),
                    self._store.put_objects(self._markers(user)),
                )
            metrics.provisioned("user")
            return pair

    async def _create(self, user: str, secret: str, keep: AccessKey | None) -> AccessKey:
        """A user absent from the store: create it, then its policies and membership."""
        pair = await self.set_secret(user, secret, keep, absent=True)
        await settle(
            self._policies.sync_user(user, rewrite=True, created=True),
            self._joins.join(GLOBAL_GROUP, user),
        )
        return pair

    async def set_secret(
        self, user: str, secret: str, keep: AccessKey | None = None, *, absent: bool = False
    ) -> AccessKey:
        """Create the store user or give it a new key pair (kept: ``keep``, if the store still
        accepts it); refused (``UnmanagedUser``) for a store user this service neither created
        nor adopted. Call with the credential lock (``absent``: see ``provision``)."""
        await self._managed.claim(user, actor=None, absent=absent)
        try:
            return await self._store.set_user(user, secret, keep)
        except StoreRejected as exc:
            log.warning(
                "object store refused user %s (request %s): %s %s",
                user,
                current_request_id(),
                exc.code,
                exc.message,
            )
            reason = REFUSED_USER_REASONS.get(exc.kind, f"error code {exc.code}")
            raise UserOperationError(f"the object store refused user {user!r}: {reason}") from None

    def _markers(self, user: str) -> list[StoreObject]:
        objects = [StoreObject(b, k) for b, k in self._layout.user_marker_keys(user)]
        readme = USER_README.format(
            user=user,
            general=self._layout.user_home_urls(user)[0],
            sql=self._layout.user_sql_warehouse_url(user),
            namespace=self._layout.user_namespace_prefix(user),
        )
        key = f"{self._layout.user_general_key(user)}/README.txt"
        objects.append(StoreObject(self._layout.bucket, key, readme.encode()))
        return objects
