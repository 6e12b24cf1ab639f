"""The caller's own view: homes, groups, the policies in force and the paths they open.

Policies are shown as the object store holds them (not as we would render them), so what a
user reads here is what is enforced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from minio_manager.errors import GroupNotFound, TenantForbidden, TenantNotFound, UserNotFound
from minio_manager.governance.layout import (
    Layout,
    read_only_group,
    user_home_policy_name,
    user_system_policy_name,
)
from minio_manager.governance.naming import base_group_of, validate_group_name
from minio_manager.governance.policies import POLICY_VERSION, grants_from_document, is_overflow_name
from minio_manager.objectstore.port import ObjectStore, StoreGroup, StoreUser
from minio_manager.provisioning.membership import GroupMembership
from minio_manager.tenants.service import tenant_name
from minio_manager.workspaces.schemas import (
    AccessiblePathsResponse,
    GroupSqlWarehousePrefixResponse,
    GroupWorkspaceResponse,
    NamespacePrefixResponse,
    Policy,
    PolicyDocument,
    PolicyStatement,
    UserGroupsResponse,
    UserPoliciesResponse,
    UserSqlWarehousePrefixResponse,
    WorkspaceResponse,
)

if TYPE_CHECKING:
    from minio_manager.caller import Caller

REDACTED = "<redacted>"
Document = Mapping[str, Any]


def _field(mapping: Mapping[str, Any], name: str) -> Any:
    """MinIO may answer ``Statement`` or ``statement``; look fields up case-insensitively."""
    lowered = name.lower()
    return next((v for k, v in mapping.items() if str(k).lower() == lowered), None)


def _single_or_list(value: Any) -> str | list[str]:
    if isinstance(value, str):
        return value
    items = [str(v) for v in value] if isinstance(value, list) else []
    return items[0] if len(items) == 1 else items


def _statements(doc: Document | None) -> list[PolicyStatement]:
    raw = _field(doc, "Statement") if doc is not None else None
    if isinstance(raw, Mapping):
        raw = [raw]
    result = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, Mapping):
            continue
        condition = _field(item, "Condition")
        result.append(
            PolicyStatement(
                effect=str(_field(item, "Effect")),
                action=_single_or_list(_field(item, "Action")),
                resource=_single_or_list(_field(item, "Resource")),
                condition=condition if isinstance(condition, dict) else None,
                principal=_field(item, "Principal"),
            )
        )
    return result


def _policy(name: str, documents: Sequence[Document | None]) -> Policy:
    """One policy model; overflow documents (``name--2`` …) are folded into their base."""
    version = next(
        (str(_field(d, "Version")) for d in documents if d is not None and _field(d, "Version")),
        POLICY_VERSION,
    )
    statements = [s for d in documents for s in _statements(d)]
    return Policy(
        policy_name=name, policy_document=PolicyDocument(version=version, statement=statements)
    )


def _family(base: str, names: Iterable[str]) -> list[str]:
    """``base`` and its overflow names, in document order."""
    members = [n for n in names if n == base or is_overflow_name(base, n)]
    return sorted(members, key=lambda n: 1 if n == base else int(n.rsplit("-", 1)[1]))


def accessible_paths(documents: Iterable[Document | None]) -> list[str]:
    paths = {
        f"s3a://{g.bucket}/{g.key}/"
        for doc in documents
        if doc is not None
        for g in grants_from_document(doc)
    }
    return sorted(paths)


class WorkspaceService:
    def __init__(self, store_: ObjectStore, membership: GroupMembership, layout: Layout) -> None:
        self._store = store_
        self._membership = membership
        self._layout = layout

    async def _documents(self, names: Iterable[str]) -> dict[str, Document | None]:
        unique = list(dict.fromkeys(names))
        found = await asyncio.gather(*(self._store.get_policy(n) for n in unique))
        return dict(zip(unique, found, strict=True))

    async def _policies(
        self, user: str
    ) -> tuple[StoreUser, Policy, Policy, list[Policy], dict[str, Document | None]]:
        """(the user, home, system, group policies, every document) of a provisioned user."""
        found = await self._store.get_user(user)
        if found is None:
            raise UserNotFound(
                f"User '{user}' has no object-store account yet; call GET /credentials/ first"
            )
        infos = await self._membership.groups(found.groups)
        group_policy_names = [
            name
            for group in found.groups
            if (info := infos.get(group)) is not None
            for name in info.policies
        ]
        docs = await self._documents([*found.policies, *group_policy_names])
        home_base, system_base = user_home_policy_name(user), user_system_policy_name(user)
        home = _policy(home_base, [docs[n] for n in _family(home_base, found.policies)])
        system = _policy(system_base, [docs[n] for n in _family(system_base, found.policies)])
        groups = [_policy(n, [docs[n]]) for n in dict.fromkeys(group_policy_names)]
        return found, home, system, groups, docs

    async def me(self, caller: Caller) -> WorkspaceResponse:
        found, home, system, group_policies, docs = await self._policies(caller.username)
        return WorkspaceResponse(
            username=caller.username,
            access_key=found.access_key,
            secret_key=REDACTED,
            home_paths=self._layout.user_home_urls(caller.username),
            groups=list(found.groups),
            user_policies=[home, system],
            group_policies=group_policies,
            total_policies=len(docs),
            accessible_paths=accessible_paths(docs.values()),
        )

    async def groups(self, caller: Caller) -> UserGroupsResponse:
        """All the caller's groups, ``ro`` forms included: one (cached) store call."""
        groups = list(await self._membership.user_groups(caller.username) or ())
        return UserGroupsResponse(username=caller.username, groups=groups, group_count=len(groups))

    async def policies(self, caller: Caller) -> UserPoliciesResponse:
        _, home, system, group_policies, docs = await self._policies(caller.username)
        return UserPoliciesResponse(
            username=caller.username,
            user_home_policy=home,
            user_system_policy=system,
            group_policies=group_policies,
            total_policies=len(docs),
        )

    async def accessible_paths(self, caller: Caller) -> AccessiblePathsResponse:
        *_, docs = await self._policies(caller.username)
        paths = accessible_paths(docs.values())
        return AccessiblePathsResponse(
            username=caller.username, accessible_paths=paths, total_paths=len(paths)
        )

    async def _member_group(self, caller: Caller, group: str) -> StoreGroup:
        """The group, if the caller is in it or in its read-only twin."""
        validate_group_name(group)
        info, mine = await asyncio.gather(
            self._membership.group(group), self._membership.user_groups(caller.username)
        )
        if info is None:
            raise GroupNotFound(f"Group '{group}' not found")
        if not {group, read_only_group(group)} & set(mine or ()):
            raise TenantForbidden(f"You are not a member of group '{group}'")
        return info

    async def group(self, caller: Caller, group: str) -> GroupWorkspaceResponse:
        info = await self._member_group(caller, group)
        docs = await self._documents(info.policies)
        return GroupWorkspaceResponse(
            group_name=group,
            members=list(info.members),
            member_count=len(info.members),
            accessible_paths=accessible_paths(docs.values()),
        )

    async def group_sql_prefix(self, caller: Caller, group: str) -> GroupSqlWarehousePrefixResponse:
        await self._member_group(caller, group)
        # ``g``ro members read ``g``'s warehouse: there is no ``tenant-sql-warehouse/gro/``.
        return GroupSqlWarehousePrefixResponse(
            group_name=group,
            sql_warehouse_prefix=self._layout.tenant_sql_warehouse_url(base_group_of(group)),
        )

    def sql_prefix(self, caller: Caller) -> UserSqlWarehousePrefixResponse:
        return UserSqlWarehousePrefixResponse(
            username=caller.username,
            sql_warehouse_prefix=self._layout.user_sql_warehouse_url(caller.username),
        )

    async def namespace_prefix(self, caller: Caller, tenant: str | None) -> NamespacePrefixResponse:
        """The caller's Hive namespace prefix, and the tenant's if the caller is a member."""
        tenant_prefix = None
        if tenant is not None:
            tenant = tenant_name(tenant)
            info, mine = await asyncio.gather(
                self._membership.group(tenant), self._membership.user_groups(caller.username)
            )
            if info is None:
                raise TenantNotFound(f"Tenant '{tenant}' not found")
            if not {tenant, read_only_group(tenant)} & set(mine or ()):
                raise TenantForbidden(f"You are not a member of tenant '{tenant}'")
            tenant_prefix = self._layout.tenant_namespace_prefix(tenant)
        return NamespacePrefixResponse(
            username=caller.username,
            user_namespace_prefix=self._layout.user_namespace_prefix(caller.username),
            tenant=tenant,
            tenant_namespace_prefix=tenant_prefix,
        )
