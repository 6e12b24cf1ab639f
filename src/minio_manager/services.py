"""The wiring: every long-lived client and service, built once by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from minio_manager.auth.kbase import KBaseAuthClient, KBaseUser
from minio_manager.config import Settings
from minio_manager.credentials.service import CredentialService
from minio_manager.db.engine import create_engine, transaction
from minio_manager.governance.layout import Layout
from minio_manager.locks import LockManager
from minio_manager.management.service import ManagementService
from minio_manager.objectstore.minio import MinioStore
from minio_manager.objectstore.port import ObjectStore
from minio_manager.profiles import store as profiles
from minio_manager.provisioning.groups import GroupProvisioner
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
    credentials: CredentialService
    membership: GroupMembership
    tenants: TenantService
    management: ManagementService
    workspaces: WorkspaceService
    sharing: SharingService
    regenerator: PolicyRegenerator

    async def close(self) -> None:
        await self.reconciler.stop()
        await self.auth.close()
        await self.store.close()
        await self.redis.aclose()
        await self.engine.dispose()


def build_services(settings: Settings) -> Services:
    layout = settings.layout
    engine = create_engine(settings)
    redis = Redis.from_url(
        settings.redis_url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
    )
    minio = MinioStore(
        settings.minio_endpoint,
        settings.minio_root_user,
        settings.minio_root_password.get_secret_value(),
        timeout_seconds=settings.minio_timeout_seconds,
        max_connections=settings.minio_max_connections,
        policy_max_bytes=settings.policy_max_bytes,
    )
    # Everyone uses the tracking view, so every membership change invalidates the cache.
    membership = GroupMembership(minio, ttl_seconds=settings.group_cache_seconds)
    store = membership.store

    async def capture_profile(user: KBaseUser) -> None:
        async with transaction(engine) as conn:
            await profiles.upsert(conn, user.username, user.display_name, user.email)

    auth = KBaseAuthClient(
        settings.kbase_auth_url,
        timeout_seconds=settings.auth_timeout_seconds,
        max_entries=settings.auth_cache_max_entries,
        on_lookup=capture_profile,
    )
    locks = LockManager(redis)
    policies = PolicySync(
        store, engine, layout, lock_wait_seconds=settings.enforce_lock_wait_seconds
    )
    enforcer = Enforcer(engine, store, policies, wait_seconds=settings.enforce_lock_wait_seconds)
    reconciler = Reconciler(engine, enforcer, interval_seconds=settings.reconcile_interval_seconds)
    groups = GroupProvisioner(store, layout, policies)
    users = UserProvisioner(store, layout, policies, groups)
    credentials = CredentialService(
        engine,
        store,
        locks,
        users,
        encryption_key=settings.mms_db_encryption_key.get_secret_value(),
        lock_wait_seconds=settings.credential_lock_wait_seconds,
        lock_expiry_seconds=settings.credential_lock_expiry_seconds,
    )
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
        credentials=credentials,
        membership=membership,
        tenants=TenantService(
            engine,
            store,
            membership,
            locks,
            auth,
            layout,
            lock_wait_seconds=settings.policy_lock_wait_seconds,
            lock_expiry_seconds=settings.policy_lock_expiry_seconds,
            enforcer=enforcer,
        ),
        management=ManagementService(
            engine,
            store,
            membership,
            locks,
            credentials,
            policies,
            groups,
            layout,
            group_lock_wait_seconds=settings.policy_lock_wait_seconds,
            group_lock_expiry_seconds=settings.policy_lock_expiry_seconds,
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
            lock_wait_seconds=settings.policy_lock_wait_seconds,
            lock_expiry_seconds=settings.policy_lock_expiry_seconds,
            enforcer=enforcer,
        ),
        regenerator=PolicyRegenerator(engine, store, policies),
    )
