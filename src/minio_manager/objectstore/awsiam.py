"""AWS-IAM-API adapter of the object-store port (SeaweedFS, Ceph RGW, AWS), over aiobotocore.

How the port maps onto the IAM API (the reasons are in docs/backends.md):
- a user is an IAM user; its key pair is issued by the store (``CreateAccessKey``), so the
  access key id is not the user name and the ``secret`` the service proposes is not used;
- a named policy is a *managed* policy (``CreatePolicy``; an overwrite is a new default
  version, older versions deleted), attached with ``Attach*Policy``; inline policies are
  never written, but any found are deleted before a user or group is, because SeaweedFS
  keeps them past ``DeleteUser``/``DeleteGroup`` and enforces them again on a re-create;
- "set the attached policies" is attach-missing, then detach-extra (not one call);
- lists are read with paginators (SeaweedFS ignores ``MaxItems`` and answers in one page).
Data calls (buckets, marker objects, prefix deletion) are in ``awss3.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, TypeVar

import httpx

from minio_manager.objectstore.awsclients import AwsClients, absent_ok, call
from minio_manager.objectstore.awss3 import S3Data
from minio_manager.objectstore.errors import StoreRejected, StoreUnavailable
from minio_manager.objectstore.port import (
    AWS_MAX_ATTACHMENTS,
    AccessKey,
    StoreGroup,
    StoreObject,
    StoreUser,
)
from minio_manager.objectstore.signing import signed_headers

log = logging.getLogger(__name__)

T = TypeVar("T")

FAN_OUT = 16
"""IAM calls one port call runs at once (one per member, key or attachment)."""
REJECTED_KEY_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"})


async def _all(calls: Iterable[Awaitable[Any]]) -> None:
    """Run every call (at most ``FAN_OUT`` at once); raise the first failure after all ran."""
    slots = asyncio.Semaphore(FAN_OUT)

    async def bounded(c: Awaitable[Any]) -> Any:
        async with slots:
            return await c

    results = await asyncio.gather(*(bounded(c) for c in calls), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _or_none(work: Awaitable[T]) -> T | None:
    """The result, or None when the store answers that the entity does not exist."""
    try:
        return await work
    except StoreRejected as exc:
        if exc.not_found:
            return None
        raise


class AwsIamStore:
    """Object-store port implemented with the AWS IAM and S3 APIs."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        *,
        region: str = "us-east-1",
        timeout_seconds: float = 30.0,
        max_connections: int = 64,
        policy_max_bytes: int = 20_480,
        policy_max_attachments: int | None = AWS_MAX_ATTACHMENTS,
    ) -> None:
        self.policy_max_bytes = policy_max_bytes
        self.policy_max_attachments = policy_max_attachments
        self._clients = AwsClients(
            endpoint,
            access_key,
            secret_key,
            region=region,
            timeout_seconds=timeout_seconds,
            max_connections=max_connections,
        )
        self._data = S3Data(self._clients)
        self._arn_prefix: str | None = None
        self._arn_learning = asyncio.Lock()
        self._known_groups: set[str] = set()
        # Only for ``authenticates``: a request signed with the user's own pair.
        self._probe = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds))
        )

    async def close(self) -> None:
        await self._clients.close()
        await self._probe.aclose()

    async def ping(self) -> None:
        """S3 and IAM answer with the admin pair (IAM shares the port on SeaweedFS)."""
        s3 = await self._clients.s3()
        iam = await self._clients.iam()
        await call("s3:ListBuckets", s3.list_buckets())
        await call("iam:ListGroups", iam.list_groups(MaxItems=1))

    # -- users -----------------------------------------------------------------------------
    async def set_user(self, name: str, secret: str, keep: AccessKey | None = None) -> AccessKey:
        iam = await self._clients.iam()
        try:
            await call("iam:CreateUser", iam.create_user(UserName=name))
        except StoreRejected as exc:
            if exc.code != "EntityAlreadyExists":
                raise
        existing = await self._access_key_ids(name)
        kept = keep is not None and keep.access_key in existing
        if kept and keep and await self.authenticates(keep.access_key, keep.secret_key):
            return keep
        # A rotation: the old pairs stop working before the new one is handed out.
        await _all(
            absent_ok(
                "iam:DeleteAccessKey",
                iam.delete_access_key(UserName=name, AccessKeyId=key_id),
            )
            for key_id in existing
        )
        created = await call("iam:CreateAccessKey", iam.create_access_key(UserName=name))
        pair = created["AccessKey"]
        return AccessKey(pair["AccessKeyId"], pair["SecretAccessKey"])

    async def _access_key_ids(self, name: str) -> list[str]:
        iam = await self._clients.iam()
        found = await call("iam:ListAccessKeys", iam.list_access_keys(UserName=name))
        return [k["AccessKeyId"] for k in found.get("AccessKeyMetadata", [])]

    async def get_user(self, name: str) -> StoreUser | None:
        """The user, or None when ``GetUser`` does not know it.

        A user ``GetUser`` knows may still be unknown to one of the lists: SeaweedFS answers
        ``ListAttachedUserPolicies`` with ``NoSuchEntity`` for the identities of its static
        configuration (the admin of ``s3.json``), which it lists and gets like any user. Such
        a list counts as empty; only when ``GetUser`` no longer knows the user either (deleted
        meanwhile) is it absent.
        """
        iam = await self._clients.iam()
        if not await self._user_exists(name):
            return None
        attached, groups, keys = await asyncio.gather(
            _or_none(self._attached("user", name)),
            _or_none(call("iam:ListGroupsForUser", iam.list_groups_for_user(UserName=name))),
            _or_none(self._access_key_ids(name)),
        )
        if (attached is None or groups is None or keys is None) and not await self._user_exists(
            name
        ):
            return None
        memberships: list[Any] = [] if groups is None else list(groups.get("Groups", []))
        return StoreUser(
            name=name,
            policies=tuple(sorted(attached or ())),
            groups=tuple(sorted(g["GroupName"] for g in memberships)),
            access_keys=tuple(keys or ()),
        )

    async def _user_exists(self, name: str) -> bool:
        iam = await self._clients.iam()
        return await _or_none(call("iam:GetUser", iam.get_user(UserName=name))) is not None

    async def list_users(self) -> list[str]:
        iam = await self._clients.iam()
        names: list[str] = []

        async def walk() -> None:
            async for page in iam.get_paginator("list_users").paginate():
                names.extend(u["UserName"] for u in page.get("Users", []))

        await call("iam:ListUsers", walk())
        return sorted(set(names))

    async def delete_user(self, name: str) -> None:
        """Keys, attachments, memberships and inline policies first (AWS refuses otherwise,
        and SeaweedFS would keep inline policies for a later user of the same name)."""
        iam = await self._clients.iam()
        try:
            keys, attached, groups, inline = await asyncio.gather(
                self._access_key_ids(name),
                self._attached("user", name),
                call("iam:ListGroupsForUser", iam.list_groups_for_user(UserName=name)),
                call("iam:ListUserPolicies", iam.list_user_policies(UserName=name)),
            )
        except StoreRejected as exc:
            if exc.not_found:
                return
            raise
        arns = await self._arns(attached)
        await _all(
            [
                *(
                    absent_ok(
                        "iam:DeleteAccessKey",
                        iam.delete_access_key(UserName=name, AccessKeyId=k),
                    )
                    for k in keys
                ),
                *(
                    absent_ok(
                        "iam:DetachUserPolicy",
                        iam.detach_user_policy(UserName=name, PolicyArn=a),
                    )
                    for a in arns
                ),
                *(
                    absent_ok(
                        "iam:RemoveUserFromGroup",
                        iam.remove_user_from_group(GroupName=g["GroupName"], UserName=name),
                    )
                    for g in groups.get("Groups", [])
                ),
                *(
                    absent_ok(
                        "iam:DeleteUserPolicy",
                        iam.delete_user_policy(UserName=name, PolicyName=p),
                    )
                    for p in inline.get("PolicyNames", [])
                ),
            ]
        )
        await absent_ok("iam:DeleteUser", iam.delete_user(UserName=name))

    async def authenticates(self, access_key: str, secret_key: str) -> bool:
        """ListBuckets signed with the pair: an unknown key or a wrong secret is refused as
        such; any other answer (even AccessDenied) means the pair authenticated."""
        url = f"{self._clients.endpoint.rstrip('/')}/"
        headers = signed_headers(
            method="GET", url=url, body=b"", access_key=access_key, secret_key=secret_key
        )
        try:
            response = await self._probe.get(url, headers=headers)
        except httpx.HTTPError:
            raise StoreUnavailable("the object store is unreachable") from None
        if response.status_code >= 500:
            raise StoreUnavailable(f"the object store failed (HTTP {response.status_code})")
        if response.status_code < 300:
            return True
        return not any(code.encode() in response.content for code in REJECTED_KEY_CODES)

    # -- groups ----------------------------------------------------------------------------
    async def _ensure_group(self, group: str, *, known: bool = True) -> None:
        if known and group in self._known_groups:
            return
        iam = await self._clients.iam()
        try:
            await call("iam:CreateGroup", iam.create_group(GroupName=group))
        except StoreRejected as exc:
            if exc.code != "EntityAlreadyExists":
                raise
        self._known_groups.add(group)

    async def add_group_members(self, group: str, members: Sequence[str]) -> None:
        await self._ensure_group(group)
        try:
            await self._add(group, members)
        except StoreRejected as exc:
            if not exc.not_found:
                raise
            # Deleted meanwhile (by another replica), or a member is unknown: create again
            # if it is the group; a second refusal is the member's.
            await self._ensure_group(group, known=False)
            await self._add(group, members)

    async def _add(self, group: str, members: Sequence[str]) -> None:
        iam = await self._clients.iam()
        await _all(
            call(
                "iam:AddUserToGroup",
                iam.add_user_to_group(GroupName=group, UserName=u),
            )
            for u in sorted(set(members))
        )

    async def remove_group_members(self, group: str, members: Sequence[str]) -> None:
        iam = await self._clients.iam()
        await _all(
            absent_ok(
                "iam:RemoveUserFromGroup",
                iam.remove_user_from_group(GroupName=group, UserName=u),
            )
            for u in sorted(set(members))
        )

    async def _members(self, group: str) -> list[str]:
        iam = await self._clients.iam()
        members: list[str] = []

        async def walk() -> None:
            async for page in iam.get_paginator("get_group").paginate(GroupName=group):
                members.extend(u["UserName"] for u in page.get("Users", []))

        await call("iam:GetGroup", walk())
        return members

    async def get_group(self, group: str) -> StoreGroup | None:
        try:
            members, attached = await asyncio.gather(
                self._members(group), self._attached("group", group)
            )
        except StoreRejected as exc:
            if exc.not_found:
                return None
            raise
        return StoreGroup(
            name=group, members=tuple(sorted(set(members))), policies=tuple(sorted(attached))
        )

    async def list_groups(self) -> list[str]:
        iam = await self._clients.iam()
        names: list[str] = []

        async def walk() -> None:
            async for page in iam.get_paginator("list_groups").paginate():
                names.extend(g["GroupName"] for g in page.get("Groups", []))

        await call("iam:ListGroups", walk())
        return sorted(set(names))

    async def delete_group(self, group: str) -> None:
        """Members, attachments and inline policies first (see the module doc)."""
        iam = await self._clients.iam()
        self._known_groups.discard(group)
        try:
            members, attached, inline = await asyncio.gather(
                self._members(group),
                self._attached("group", group),
                call("iam:ListGroupPolicies", iam.list_group_policies(GroupName=group)),
            )
        except StoreRejected as exc:
            if exc.not_found:
                return
            raise
        arns = await self._arns(attached)
        await _all(
            [
                self.remove_group_members(group, members),
                *(
                    absent_ok(
                        "iam:DetachGroupPolicy",
                        iam.detach_group_policy(GroupName=group, PolicyArn=a),
                    )
                    for a in arns
                ),
                *(
                    absent_ok(
                        "iam:DeleteGroupPolicy",
                        iam.delete_group_policy(GroupName=group, PolicyName=p),
                    )
                    for p in inline.get("PolicyNames", [])
                ),
            ]
        )
        await absent_ok("iam:DeleteGroup", iam.delete_group(GroupName=group))
        self._known_groups.discard(group)

    # -- policies --------------------------------------------------------------------------
    async def _local_policies(self) -> dict[str, str]:
        """Name → ARN of every customer-managed policy; learns the ARN prefix on the way."""
        iam = await self._clients.iam()
        found: dict[str, str] = {}

        async def walk() -> None:
            async for page in iam.get_paginator("list_policies").paginate(Scope="Local"):
                found.update((p["PolicyName"], p["Arn"]) for p in page.get("Policies", []))

        await call("iam:ListPolicies", walk())
        for name, arn in found.items():
            self._learn_prefix(name, arn)
            break
        return found

    def _learn_prefix(self, name: str, arn: str) -> None:
        """ARNs differ by store (AWS: ``arn:aws:iam::<account>:policy/N``; SeaweedFS: no
        account); every policy this service writes has the default path, so one ARN seen
        gives all the others."""
        if self._arn_prefix is None and arn.endswith("/" + name):
            self._arn_prefix = arn[: -len(name)]

    async def _arn(self, name: str) -> str | None:
        """The ARN ``name`` has (or would have); None while no policy exists anywhere."""
        if self._arn_prefix is None:
            async with self._arn_learning:
                if self._arn_prefix is None:
                    await self._local_policies()
        return None if self._arn_prefix is None else self._arn_prefix + name

    async def _arns(self, names: Iterable[str]) -> list[str]:
        return [arn for n in names if (arn := await self._arn(n)) is not None]

    async def _attached(self, kind: str, entity: str) -> list[str]:
        iam = await self._clients.iam()
        names: list[str] = []

        async def walk() -> None:
            if kind == "user":
                pages = iam.get_paginator("list_attached_user_policies").paginate(UserName=entity)
            else:
                pages = iam.get_paginator("list_attached_group_policies").paginate(GroupName=entity)
            async for page in pages:
                for p in page.get("AttachedPolicies", []):
                    self._learn_prefix(p["PolicyName"], p["PolicyArn"])
                    names.append(p["PolicyName"])

        await call(f"iam:ListAttached{kind.title()}Policies", walk())
        return names

    async def put_policy(self, name: str, document: dict[str, Any]) -> None:
        """Create, or make ``document`` the default version and delete the older ones (AWS
        keeps at most five). Attachments stay: they name the policy, not a version."""
        iam = await self._clients.iam()
        text = json.dumps(document, separators=(",", ":"))
        arn = await self._arn(name)
        if arn is not None:
            try:
                await self._new_default_version(arn, text)
                return
            except StoreRejected as exc:
                if not exc.not_found:
                    raise
        try:
            created = await call(
                "iam:CreatePolicy",
                iam.create_policy(PolicyName=name, PolicyDocument=text),
            )
        except StoreRejected as exc:
            if exc.code != "EntityAlreadyExists":
                raise
            arn = await self._arn(name)  # created meanwhile (another replica): overwrite it
            if arn is None:
                raise
            await self._new_default_version(arn, text)
            return
        self._learn_prefix(name, created["Policy"]["Arn"])

    async def _new_default_version(self, arn: str, text: str) -> None:
        iam = await self._clients.iam()
        await call(
            "iam:CreatePolicyVersion",
            iam.create_policy_version(PolicyArn=arn, PolicyDocument=text, SetAsDefault=True),
        )
        versions = await call("iam:ListPolicyVersions", iam.list_policy_versions(PolicyArn=arn))
        await _all(
            absent_ok(
                "iam:DeletePolicyVersion",
                iam.delete_policy_version(PolicyArn=arn, VersionId=v["VersionId"]),
            )
            for v in versions.get("Versions", [])
            if not v.get("IsDefaultVersion")
        )

    async def get_policy(self, name: str) -> dict[str, Any] | None:
        iam = await self._clients.iam()
        arn = await self._arn(name)
        if arn is None:
            return None
        try:
            policy = await call("iam:GetPolicy", iam.get_policy(PolicyArn=arn))
            version_id = policy["Policy"].get("DefaultVersionId") or "v1"
            version = await call(
                "iam:GetPolicyVersion",
                iam.get_policy_version(PolicyArn=arn, VersionId=version_id),
            )
        except StoreRejected as exc:
            if exc.not_found:
                return None
            raise
        document: Any = version["PolicyVersion"].get("Document")
        if isinstance(document, str):  # botocore decodes it; a store may send it raw
            from urllib.parse import unquote

            document = json.loads(unquote(document))
        return dict(document) if isinstance(document, dict) else None

    async def list_policies(self) -> list[str]:
        return sorted(await self._local_policies())

    async def delete_policy(self, name: str) -> None:
        """Older versions first (AWS refuses otherwise); attached → ``StoreRejected``
        (``Refusal.CONFLICT``), as on MinIO."""
        iam = await self._clients.iam()
        arn = await self._arn(name)
        if arn is None:
            return
        try:
            versions = await call("iam:ListPolicyVersions", iam.list_policy_versions(PolicyArn=arn))
        except StoreRejected as exc:
            if exc.not_found:
                return
            raise
        await _all(
            absent_ok(
                "iam:DeletePolicyVersion",
                iam.delete_policy_version(PolicyArn=arn, VersionId=v["VersionId"]),
            )
            for v in versions.get("Versions", [])
            if not v.get("IsDefaultVersion")
        )
        await absent_ok("iam:DeletePolicy", iam.delete_policy(PolicyArn=arn))

    async def _set_attached(self, kind: str, entity: str, names: Sequence[str]) -> None:
        """Attach what is missing, then detach what is extra: a policy kept in the new set
        is never detached, so no access that stays is interrupted."""
        iam = await self._clients.iam()
        current = set(await self._attached(kind, entity))
        wanted = set(names)
        attach = await self._arns(sorted(wanted - current))
        if len(attach) < len(wanted - current):
            await self._local_policies()
            attach = await self._arns(sorted(wanted - current))
        detach = await self._arns(sorted(current - wanted))
        if kind == "user":
            await _all(
                call(
                    "iam:AttachUserPolicy",
                    iam.attach_user_policy(UserName=entity, PolicyArn=a),
                )
                for a in attach
            )
            await _all(
                absent_ok(
                    "iam:DetachUserPolicy",
                    iam.detach_user_policy(UserName=entity, PolicyArn=a),
                )
                for a in detach
            )
            return
        await _all(
            call(
                "iam:AttachGroupPolicy",
                iam.attach_group_policy(GroupName=entity, PolicyArn=a),
            )
            for a in attach
        )
        await _all(
            absent_ok(
                "iam:DetachGroupPolicy",
                iam.detach_group_policy(GroupName=entity, PolicyArn=a),
            )
            for a in detach
        )

    async def set_user_policies(self, user: str, names: Sequence[str]) -> None:
        await self._set_attached("user", user, names)

    async def set_group_policies(self, group: str, names: Sequence[str]) -> None:
        await self._set_attached("group", group, names)

    # -- data ------------------------------------------------------------------------------
    async def ensure_buckets(self, buckets: Sequence[str]) -> None:
        await self._data.ensure_buckets(buckets)

    async def put_objects(self, objects: Sequence[StoreObject]) -> None:
        await self._data.put_objects(objects)

    async def list_keys(self, bucket: str, prefix: str) -> list[str]:
        """Every key under ``prefix`` (not on the port: for tools and tests)."""
        return await self._data.list_keys(bucket, prefix)

    async def delete_prefix(self, bucket: str, prefix: str) -> int:
        return await self._data.delete_prefix(bucket, prefix)
