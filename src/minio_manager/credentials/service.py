"""Issue, cache and rotate a user's object-store credentials.

Order of writes, so that no failure can leave a wrong answer behind:
- issue: provision in the store (idempotent) → save the encrypted pair → return it;
- rotate: delete the cached pair → set the new secret in the store → save it.
A crash between steps leaves *no* cached pair, and the next ``GET /credentials/`` issues a
fresh, working one. All of it runs under ``credential_lock:{user}`` so concurrent first calls
(or a rotation racing a login) produce exactly one pair.

Whether the store user exists is decided under that lock too (``delete_user`` holds it), so
an admin rotation never re-creates a user deleted meanwhile, and a user created *new* first
loses any share rows left under its name (a recycled name inherits no grants).
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncEngine

from minio_manager.audit import store as audit
from minio_manager.credentials import store
from minio_manager.credentials.secrets import new_secret
from minio_manager.credentials.store import StoredCredentials
from minio_manager.db.engine import read, transaction
from minio_manager.errors import CredentialLockTimeout, ServiceError, UserNotFound
from minio_manager.governance.naming import validate_username
from minio_manager.locks import LockManager, credential_lock_name
from minio_manager.objectstore.port import ObjectStore
from minio_manager.provisioning import managed
from minio_manager.provisioning.users import UserProvisioner
from minio_manager.sharing import store as share_store

log = logging.getLogger(__name__)


def _lock_timeout(name: str) -> ServiceError:
    return CredentialLockTimeout(
        "another credential operation for this user is still running; try again"
    )


class CredentialService:
    def __init__(
        self,
        engine: AsyncEngine,
        store_: ObjectStore,
        locks: LockManager,
        provisioner: UserProvisioner,
        *,
        encryption_key: str,
        lock_wait_seconds: float,
        lock_expiry_seconds: float,
    ) -> None:
        self._engine = engine
        self._store = store_
        self._locks = locks
        self._provisioner = provisioner
        self._key = encryption_key
        self._wait = lock_wait_seconds
        self._expiry = lock_expiry_seconds

    def lock(self, user: str) -> AbstractAsyncContextManager[None]:
        """``credential_lock:{user}``: every change of a user's credentials runs under it."""
        return self._locks.hold(
            credential_lock_name(user),
            wait_seconds=self._wait,
            expiry_seconds=self._expiry,
            on_timeout=_lock_timeout,
        )

    async def cached(self, user: str) -> StoredCredentials | None:
        return await read(self._engine, lambda conn: store.fetch(conn, user, self._key))

    async def get_or_issue(self, user: str) -> StoredCredentials:
        """The hot path: one indexed query when the pair is cached."""
        found = await self.cached(user)
        if found is not None:
            return found
        async with self.lock(user):
            found = await self.cached(user)
            if found is not None:
                return found
            return await self._issue(user, actor=user, action="credentials.issue")

    async def create_user(self, user: str, actor: str) -> tuple[StoredCredentials, bool]:
        """Admin create: provision (or repair) and return the cached pair; True if new."""
        async with self.lock(user):
            found = await self.cached(user)
            if found is not None:
                await self._provision(user, found.secret_key)
                return found, False
            return await self._issue(user, actor=actor, action="user.create"), True

    async def rotate(self, user: str, actor: str, *, provision_missing: bool) -> StoredCredentials:
        """A new secret for ``user``.

        ``provision_missing`` is True only for a user rotating their own secret (they are
        logged in, so a missing store user is provisioned as at a first login). Admin
        rotations pass False: existence is checked under the credential lock, which
        ``delete_user`` holds throughout, so a user deleted meanwhile is ``UserNotFound``
        and is never re-created.
        """
        validate_username(user)
        async with self.lock(user):
            # The cached pair goes first, whatever follows: if the store is unreachable below,
            # the next login still gets a fresh pair instead of the one being rotated away.
            async with transaction(self._engine) as conn:
                await store.remove(conn, user)
            exists = await self._store.get_user(user) is not None
            if not exists and not provision_missing:
                raise UserNotFound(f"User '{user}' not found")
            secret = new_secret()
            if exists:
                await self._provisioner.set_secret(user, secret)
            else:
                await self._provision(user, secret)
            return await self._save(user, secret, actor=actor, action="credentials.rotate")

    async def forget(self, user: str) -> None:
        async with transaction(self._engine) as conn:
            await store.remove(conn, user)

    async def _provision(self, user: str, secret: str) -> None:
        """Provision (or repair) ``user``; call with the credential lock held.

        A user that does not exist in the store yet is *new*: share rows still naming it (a
        share committed while an earlier user of that name was being deleted) are deleted
        before its policies are rendered. The sweep runs before the store user exists, so a
        share made to the new user (which needs it to exist) is never swept.
        """
        if await self._store.get_user(user) is None:
            validate_username(user)
            async with transaction(self._engine) as conn:
                stale = await share_store.delete_received(conn, [(share_store.USER, user)])
            if stale:
                log.warning("dropped %d stale share rows naming new user %s", stale, user)
        await self._provisioner.provision(user, secret)

    async def _issue(self, user: str, *, actor: str, action: str) -> StoredCredentials:
        secret = new_secret()
        await self._provision(user, secret)
        return await self._save(user, secret, actor=actor, action=action)

    async def _save(self, user: str, secret: str, *, actor: str, action: str) -> StoredCredentials:
        async with transaction(self._engine) as conn:
            await store.save(conn, user, user, secret, self._key)
            await managed.record(conn, user, source=managed.PROVISIONED, actor=None)
            await audit.record(conn, actor=actor, action=action, target=user)
        return StoredCredentials(user, user, secret)
