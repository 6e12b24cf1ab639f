"""Issue, cache and rotate a user's object-store credentials.

Order of writes, so that no failure can leave a wrong answer behind:
- issue: provision in the store (idempotent) → save the encrypted pair (insert-if-absent);
  the pair saved is the one the store returns (the access key is the user name on MinIO,
  an id the store chose on an AWS-IAM-API store: docs/backends.md);
- rotate: check the store is reachable and the user exists (store down → 503, the cached
  pair untouched: it still works) → mark the row ``pending`` (compare-and-set on
  ``version``) → set the new secret in the store → save it with compare-and-set on the
  version (``pending`` cleared).
All of it runs under ``credential_lock:{user}`` (concurrent first calls produce one pair), but
correctness does not rest on that lock: if it was lost (expired, deleted) and someone else
changed the row meanwhile, the compare-and-set fails, the row is left ``pending`` and the
caller gets 409. A ``pending`` row is a cache miss for ``GET /credentials/``: under the lock
the cached pair is tried at the store and handed out only if it authenticates, else a new
secret is issued. A crash between steps leaves a pending row, repaired the same way.

Whether the store user exists is decided under that lock too (``delete_user`` holds it), so
an admin rotation never re-creates a user deleted meanwhile, and a user created *new* first
loses any share rows left under its name (a recycled name inherits no grants).
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncEngine

from minio_manager.audit import store as audit
from minio_manager.checkpoints import checkpoint
from minio_manager.credentials import store
from minio_manager.credentials.secrets import new_secret
from minio_manager.credentials.store import StoredCredentials
from minio_manager.db.engine import read, transaction
from minio_manager.errors import CredentialLockTimeout, ServiceError, UserNotFound
from minio_manager.governance.naming import validate_username
from minio_manager.locks import Lease, LockManager, credential_lock_name
from minio_manager.objectstore.port import AccessKey, ObjectStore
from minio_manager.provisioning import managed
from minio_manager.provisioning.users import UserProvisioner
from minio_manager.sharing import store as share_store

log = logging.getLogger(__name__)


def _lock_timeout(name: str) -> ServiceError:
    return CredentialLockTimeout(
        "another credential operation for this user is still running; try again"
    )


def _lock_lost(name: str) -> ServiceError:
    return CredentialLockTimeout(
        "the credential lock of this user was lost mid-way; the secret was not changed, try again"
    )


def _overtaken() -> ServiceError:
    return CredentialLockTimeout(
        "another credential change for this user ran at the same time; fetch the pair now"
        " in force with GET /credentials/"
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

    def lock(self, user: str) -> AbstractAsyncContextManager[Lease]:
        """``credential_lock:{user}``: every change of a user's credentials runs under it."""
        return self._locks.hold(
            credential_lock_name(user),
            wait_seconds=self._wait,
            expiry_seconds=self._expiry,
            on_timeout=_lock_timeout,
        )

    async def cached(self, user: str) -> StoredCredentials | None:
        return await read(self._engine, lambda conn: store.fetch(conn, user, self._key))

    async def get_or_issue(self, user: str, *, missed: bool = False) -> StoredCredentials:
        """The hot path: one indexed query when the pair is cached and not pending.

        ``missed``: the caller has just read no usable pair (``credentials/hot.py``), so the
        read before the lock is not repeated; the decision is made by the read under it.
        """
        if not missed:
            found = await self.cached(user)
            if found is not None and not found.pending:
                return found
        async with self.lock(user) as lease:
            found = await self.cached(user)
            if found is None:
                return await self._issue(user, lease, actor=user, action="credentials.issue")
            if found.pending:
                return await self._settle(user, found, lease)
            return found

    async def create_user(self, user: str, actor: str) -> tuple[StoredCredentials, bool]:
        """Admin create: provision (or repair) and return the cached pair; True if new."""
        async with self.lock(user) as lease:
            found = await self.cached(user)
            if found is None:
                return await self._issue(user, lease, actor=actor, action="user.create"), True
            if found.pending:
                found = await self._settle(user, found, lease)
            pair = await self._provision(user, found.secret_key, keep=found.pair)
            if pair != found.pair:  # a store that issues its own keys no longer had this one
                found = await self._save(
                    user, pair, found.version, actor=actor, action="credentials.reissue"
                )
            return found, False

    async def _settle(self, user: str, found: StoredCredentials, lease: Lease) -> StoredCredentials:
        """A pending pair (a rotation was interrupted or overtaken): keep it if the store
        accepts it, else give the user a new secret."""
        if await self._store.authenticates(found.access_key, found.secret_key):
            async with transaction(self._engine) as conn:
                version = await store.clear_pending(conn, user, found.version)
            if version is None:
                raise _overtaken()
            return replace(found, version=version, pending=False)
        log.warning("cached pair of %s is not accepted by the store; issuing a new one", user)
        return await self._replace(
            user, found.version, lease, actor=user, action="credentials.reissue", provision=True
        )

    async def rotate(self, user: str, actor: str, *, provision_missing: bool) -> StoredCredentials:
        """A new secret for ``user``.

        ``provision_missing`` is True only for a user rotating their own secret (they are
        logged in, so a missing store user is provisioned as at a first login). Admin
        rotations pass False: existence is checked under the credential lock, which
        ``delete_user`` holds throughout, so a user deleted meanwhile is ``UserNotFound``
        and is never re-created.
        """
        validate_username(user)
        async with self.lock(user) as lease:
            # The store first: if it is down, nothing changes and the cached pair (still
            # valid at the store) keeps working.
            exists = await self._store.get_user(user) is not None
            if not exists and not provision_missing:
                raise UserNotFound(f"User '{user}' not found")
            current = await self.cached(user)
            version = None
            if current is not None:
                async with transaction(self._engine) as conn:
                    version = await store.mark_pending(conn, user, expected_version=current.version)
                if version is None:
                    raise _overtaken()
            return await self._replace(
                user,
                version,
                lease,
                actor=actor,
                action="credentials.rotate",
                provision=not exists,
            )

    async def _replace(
        self,
        user: str,
        version: int | None,
        lease: Lease,
        *,
        actor: str,
        action: str,
        provision: bool,
    ) -> StoredCredentials:
        """Set a new secret in the store, then save it if the row is still at ``version``
        (None: no row yet). The row is pending (or absent) while the store changes."""
        await lease.check(_lock_lost)
        secret = new_secret()
        if provision:
            pair = await self._provision(user, secret)
        else:
            pair = await self._provisioner.set_secret(user, secret)
        await checkpoint("credentials.store_set", user)
        return await self._save(user, pair, version, actor=actor, action=action)

    async def forget(self, user: str) -> None:
        async with transaction(self._engine) as conn:
            await store.remove(conn, user)

    async def _provision(self, user: str, secret: str, keep: AccessKey | None = None) -> AccessKey:
        """Provision (or repair) ``user``; call with the credential lock held. Returns the
        pair the store accepts (``ObjectStore.set_user``).

        A user that does not exist in the store yet is *new*: share rows still naming it (a
        share committed while an earlier user of that name was being deleted) are deleted
        before its policies are rendered. The sweep runs before the store user exists, so a
        share made to the new user (which needs it to exist) is never swept.
        """
        absent = await self._store.get_user(user) is None
        if absent:
            validate_username(user)
            async with transaction(self._engine) as conn:
                stale = await share_store.delete_received(conn, [(share_store.USER, user)])
                # Recorded as managed before the store user exists (``ManagedUsers.claim``),
                # in the same transaction as the sweep: one commit less on a first login.
                await managed.record(conn, user, source=managed.PROVISIONED, actor=None)
            if stale:
                log.warning("dropped %d stale share rows naming new user %s", stale, user)
        return await self._provisioner.provision(user, secret, keep, absent=absent)

    async def _issue(
        self, user: str, lease: Lease, *, actor: str, action: str
    ) -> StoredCredentials:
        return await self._replace(user, None, lease, actor=actor, action=action, provision=True)

    async def _save(
        self, user: str, pair: AccessKey, version: int | None, *, actor: str, action: str
    ) -> StoredCredentials:
        """Compare-and-set the new pair. If someone else changed the row meanwhile (our lock
        was lost), whose secret the store holds now is unknown: leave the row pending, so
        the next ``GET /credentials/`` verifies it, and answer 409."""
        async with transaction(self._engine) as conn:
            saved = await store.save(
                conn, user, pair.access_key, pair.secret_key, self._key, expected_version=version
            )
            if saved is None:
                await store.mark_pending(conn, user)
            else:
                await managed.record(conn, user, source=managed.PROVISIONED, actor=None)
                await audit.record(conn, actor=actor, action=action, target=user)
        if saved is None:
            log.warning("credential change of %s was overtaken; row left pending", user)
            raise _overtaken()
        return StoredCredentials(user, pair.access_key, pair.secret_key, saved)
