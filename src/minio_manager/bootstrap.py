"""The wiring: every long-lived client and service, built once by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

from minio_manager.admission import BusyAwareRedisPool, FairGate
from minio_manager.auth.kbase import KBaseAuthClient, KBaseUser
from minio_manager.config import Settings
from minio_manager.credentials.hot import HotCredentialReader
from minio_manager.credentials.service import CredentialService
from minio_manager.db.engine import create_engine, transaction
from minio_manager.db.fast import FastReader
from minio_manager.governance.layout import Layout
from minio_manager.locks import LockManager
from minio_manager.management.service import ManagementService
from minio_manager.objectstore.factory import build_store
from minio_manager.objectstore.port import ObjectStore
from minio_manager.observability.instrument import (
    instrument_engine,
    instrument_http_client,
    instrument_redis,
    kbase_operation,
)
from minio_manager.observability.logging import log_governance_on_commit
from minio_manager.profiles import store as profiles
from minio_manager.provisioning.groups import GroupProvisioner
from minio_manager.provisioning.managed import ManagedUsers
from minio_manager.provisioning.membership import GroupMembership
from minio_manager.provisioning.policy_sync import PolicySync
from minio_manager.provisioning.reconciler import Enforcer, Reconciler
from minio_manager.provisioning.regenerate import PolicyRegenerator
from minio_manager.provisioning.users import UserProvisioner
from minio_manager.sharing.service import SharingService
from minio_manager.tenants.service import TenantService
from minio_manager.workspaces.service import WorkspaceService


@dataclass
class Services:
    settings: Settings
    layout: Layout
    engine: AsyncEngine
    redis: Redis
    store: ObjectStore
    auth: KBaseAuthClient
    locks: LockManager
    policies: PolicySync
    enforcer: Enforcer
    reconciler: Reconciler
    groups: GroupProvisioner
    users: UserProvisioner
    managed: ManagedUsers
    credentials: CredentialService
    membership: GroupMembership
    tenants: TenantService
    management: ManagementService
    workspaces: WorkspaceService
    sharing: SharingService
    regenerator: PolicyRegenerator
    hot_credentials: HotCredentialReader

    async def close(self) -> None:
        await self.reconciler.stop()
        await self.hot_credentials.close()
        await self.auth.close()
        await self.store.close()
        await self.redis.aclose()
        await self.engine.dispose()


def _instrument(engine: AsyncEngine, redis: Redis, auth: KBaseAuthClient) -> None:
    """Metrics at the wire of each dependency (the store's: ``objectstore/factory.py``), and
    a log line per committed audit row."""
    instrument_engine(engine)
    instrument_redis(redis)
    instrument_http_client(auth.http, "kbase", kbase_operation)
    log_governance_on_commit(engine)


def build_services(settings: Settings) -> Services:
    layout = settings.layout
    engine = create_engine(settings)
    # After a Redis restart every pooled connection is dead, and its first command fails. One
    # quick retry on a fresh connection keeps that from failing a lock *release* (the lock
    # would then stay held until it expires, blocking the user or group for minutes).
    redis = Redis.from_pool(
        BusyAwareRedisPool.from_url(
            settings.redis_url,
            max_connections=settings.redis_pool_size,
            timeout=settings.pool_wait_seconds,
            socket_timeout=5,
            socket_connect_timeout=5,
            health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            retry_on_error=[RedisConnectionError],
        )
    )
    # Everyone uses the tracking view, so every membership change invalidates the cache.
    membership = GroupMembership(
        build_store(settings),
        ttl_seconds=settings.group_cache_seconds,
        redis=redis,
        max_age_seconds=settings.membership_cache_max_seconds,
    )
    store = membership.store

    async def capture_profile(user: KBaseUser) -> None:
        async with transaction(engine) as conn:
            await profiles.upsert(conn, user.username, user.display_name, user.email)

    auth = KBaseAuthClient(
        settings.kbase_auth_url,
        timeout_seconds=settings.auth_timeout_seconds,
        max_entries=settings.auth_cache_max_entries,
        max_connections=settings.auth_max_connections,
        pool_wait_seconds=settings.pool_wait_seconds,
        lookup_queue_seconds=settings.provision_queue_wait_seconds,
        on_lookup=capture_profile,
    )
    locks = LockManager(redis)
    policies = PolicySync(
        store, engine, layout, lock_wait_seconds=settings.enforce_lock_wait_seconds
    )
    enforcer = Enforcer(engine, store, policies, wait_seconds=settings.enforce_lock_wait_seconds)
    reconciler = Reconciler(engine, enforcer, interval_seconds=settings.reconcile_interval_seconds)
    groups = GroupProvisioner(store, layout, policies)
    managed = ManagedUsers(engine, store)
    admission = FairGate(
        settings.provision_concurrency,
        wait_seconds=settings.provision_queue_wait_seconds,
        what="first logins",
    )
    users = UserProvisioner(store, layout, policies, groups, managed, admission=admission)
    credentials = CredentialService(
        engine,
        store,
        locks,
        users,
        encryption_key=settings.mms_db_encryption_key.get_secret_value(),
        lock_wait_seconds=settings.credential_lock_wait_seconds,
        lock_expiry_seconds=settings.credential_lock_expiry_seconds,
    )
    _instrument(engine, redis, auth)
    fast = FastReader(settings)  # the hot reads' own asyncpg pool (db/fast.py)
    return Services(
        settings=settings,
        layout=layout,
        engine=engine,
        redis=redis,
        store=store,
        auth=auth,
        locks=locks,
        policies=policies,
        enforcer=enforcer,
        reconciler=reconciler,
        groups=groups,
        users=users,
        managed=managed,
        credentials=credentials,
        membership=membership,
        tenants=TenantService(
            engine,
            store,
            membership,
            locks,
            auth,
            layout,
            lock_wait_seconds=settings.group_lock_wait_seconds,
            lock_expiry_seconds=settings.group_lock_expiry_seconds,
            enforcer=enforcer,
            fast=fast,
        ),
        management=ManagementService(
            engine,
            store,
            membership,
            locks,
            credentials,
            policies,
            groups,
            managed,
            layout,
            group_lock_wait_seconds=settings.group_lock_wait_seconds,
            group_lock_expiry_seconds=settings.group_lock_expiry_seconds,
            enforcer=enforcer,
        ),
        workspaces=WorkspaceService(store, membership, layout),
        sharing=SharingService(
            engine,
            store,
            layout,
            policies,
            groups,
            locks,
            lock_wait_seconds=settings.group_lock_wait_seconds,
            lock_expiry_seconds=settings.group_lock_expiry_seconds,
            enforcer=enforcer,
        ),
        regenerator=PolicyRegenerator(engine, store, policies),
        hot_credentials=HotCredentialReader(settings, fast),
    )
