"""MinIO adapter of the object-store port: admin REST API and S3 over one pooled client.

Requests are signed with SigV4 and sent with ``httpx.AsyncClient`` over our own keep-alive
HTTP/1.1 transport (``http1.py``), so independent calls run concurrently on the event loop. The
admin payload cipher is CPU-bound (Argon2id) and runs in a worker thread so it never stalls
other requests.

IAM writes wait for MinIO's IAM load (``_confirm_iam``): MinIO accepts them while it is still
loading IAM after a start, and the end of that first load replaces its in-memory IAM with what
it read from the drive, so such a write is stored but not enforced (reproduced with 300 and
600 users). A MinIO that may be a new process since IAM was last proven loaded is recognised
by what a restart does to the pool: a failed call, a 5xx, or a TCP connection the pool had to
open (idle connections to a dead process are replaced silently, so the opening is what is
seen).

Errors (``objectstore/errors.py``): a connection failure, timeout or 5xx is ``StoreUnavailable``
(503); a wait for a pooled connection that runs out is ``StoreBusy`` (429, MinIO is up); any
other refusal is ``StoreRejected`` with MinIO's error code and its neutral ``Refusal`` kind.
MinIO's own error text is for the service log (with the request id), never for a caller's
message.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

import httpx

from minio_manager.objectstore.deletion import PAGE_SIZE, DeleteFailure, not_deleted
from minio_manager.objectstore.errors import Refusal, StoreBusy, StoreRejected, StoreUnavailable
from minio_manager.objectstore.http1 import Http1Transport
from minio_manager.objectstore.port import AccessKey, StoreGroup, StoreObject, StoreUser
from minio_manager.objectstore.signing import (
    canonical_query,
    decrypt_payload,
    encode_path,
    encrypt_payload_fast,
    signed_headers,
)

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/minio/admin/v3/"
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
NOT_FOUND_CODES = frozenset(
    {
        "XMinioAdminNoSuchUser",
        "XMinioAdminNoSuchGroup",
        "XMinioAdminNoSuchPolicy",
        "NoSuchBucket",
        "NoSuchKey",
    }
)


REJECTED_KEY_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "AccessKeyDisabled"}
)
CIPHER_CONCURRENCY = 4
KEEPALIVE_SECONDS = 25.0
RETRYABLE_TRANSPORT_ERRORS = (
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
    httpx.ConnectError,
)


INVALID_NAME_CODES = frozenset({"XMinioAdminInvalidAccessKey", "XMinioInvalidObjectName"})


def refusal_kind(status: int, code: str) -> Refusal:
    """MinIO's code in the port's words."""
    if code in NOT_FOUND_CODES or status == 404:
        return Refusal.NOT_FOUND
    if code in INVALID_NAME_CODES:
        return Refusal.INVALID_NAME
    if status == 409:
        return Refusal.CONFLICT
    return Refusal.OTHER


def _split_csv(value: str | None) -> tuple[str, ...]:
    return tuple(sorted(p for p in (value or "").split(",") if p))


class MinioStore:
    """Object-store port implemented against MinIO."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        *,
        timeout_seconds: float = 30.0,
        max_connections: int = 64,
        policy_max_bytes: int = 20_480,
        policy_max_attachments: int | None = None,
        pool_wait_seconds: float = 30.0,
    ) -> None:
        self._base = endpoint.rstrip("/")
        if "://" not in self._base:
            self._base = "http://" + self._base
        self._access_key = access_key
        self._secret_key = secret_key
        self.policy_max_bytes = policy_max_bytes
        self.policy_max_attachments = policy_max_attachments
        # Each madmin cipher call holds 64 MiB (Argon2id) for its duration: bound how many run
        # at once so a burst of first logins cannot balloon memory.
        self._cipher_slots = asyncio.Semaphore(CIPHER_CONCURRENCY)
        # Opening a response costs the Argon2id KDF (64 MiB): one at a time, and callers listing
        # users at the same moment share a call. Four concurrent ``GET /management/users``
        # took the service's peak RSS from 131 to 307 MiB (issue 12).
        self._kdf_slot = asyncio.Semaphore(1)
        self._users_now: asyncio.Task[list[str]] | None = None  # a list-users call in flight
        self._users_next: asyncio.Task[list[str]] | None = None  # the one after it
        # IAM-load proof: ``_pool_events`` counts what may mean a new MinIO process (a TCP
        # connection opened, a failure); ``_iam_proven_at`` is its value when IAM was last
        # proven loaded.
        self._pool_events = 0
        self._iam_proven_at: int | None = None
        self._iam_gate = asyncio.Lock()
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                timeout_seconds, connect=min(5.0, timeout_seconds), pool=pool_wait_seconds
            ),
            # Idle connections are kept for 25 s (httpx's default is 5 s), below MinIO's own
            # idle timeout (30 s): every TCP connection opened for an IAM write costs an
            # IAM-load proof, which took ~0.9 s with 10 000 users (issue 12), so calls less
            # than 25 s apart should not have to open connections. The transport is our own
            # (``http1.py``): a quarter of httpcore's CPU per call.
            transport=Http1Transport(
                max_connections=max_connections, keepalive_expiry=KEEPALIVE_SECONDS
            ),
        )

    @property
    def http(self) -> httpx.AsyncClient:
        """The pooled client (observability attaches its timing transport to it)."""
        return self._client

    async def close(self) -> None:
        await self._client.aclose()

    # -- transport -------------------------------------------------------------------------
    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: bytes = b"",
        extra_headers: dict[str, str] | None = None,
        iam_write: bool = False,
    ) -> httpx.Response:
        if iam_write:
            await self._confirm_iam()
        query = canonical_query(params)
        url = f"{self._base}{encode_path(path)}" + (f"?{query}" if query else "")
        headers = signed_headers(
            method=method,
            url=url,
            body=body,
            access_key=self._access_key,
            secret_key=self._secret_key,
            extra=extra_headers,
        )
        response, opened = await self._request_with_retry(
            method, url, body, headers, path, iam_write=iam_write
        )
        if iam_write and opened and response.status_code < 300:
            # It went out on a new connection: MinIO may have restarted since IAM was proven
            # loaded. Prove it now (after the write), then send the same idempotent write again.
            await self._confirm_iam()
            response, _ = await self._request_with_retry(method, url, body, headers, path)
        if response.status_code >= 500:
            self._pool_events += 1
            log.warning("object store error %s on %s %s", response.status_code, method, path)
            raise StoreUnavailable(f"the object store failed (HTTP {response.status_code})")
        if response.status_code >= 300:
            raise self._rejection(response)
        return response

    async def _request_with_retry(
        self,
        method: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        path: str,
        *,
        iam_write: bool = False,
    ) -> tuple[httpx.Response, bool]:
        """Send once more when a pooled keep-alive connection turns out to be dead; also
        say whether the answer came over a TCP connection opened for it.

        Every call this adapter makes is idempotent (create-or-overwrite, delete-if-present),
        so repeating one after a connection-level failure is safe. Timeouts are not retried.
        """
        opened = False

        async def trace(event: str, info: dict[str, Any]) -> None:
            nonlocal opened
            if event == "connection.connect_tcp.complete":
                opened = True
                self._pool_events += 1

        error: httpx.HTTPError | None = None
        for attempt in (1, 2):
            try:
                response = await self._client.request(
                    method,
                    httpx.URL(url),
                    content=body,
                    headers=headers,
                    extensions={"trace": trace},
                )
                return response, opened
            except RETRYABLE_TRANSPORT_ERRORS as exc:
                self._pool_events += 1  # MinIO may have restarted: prove IAM again
                if attempt == 1:
                    log.debug("retrying %s %s after %s", method, path, type(exc).__name__)
                    if iam_write:
                        await self._confirm_iam()
                    continue
                error = exc
            except httpx.PoolTimeout:
                # Every pooled connection is busy with calls ahead of this one: MinIO is up.
                log.warning("object store: no pooled connection came free (%s %s)", method, path)
                raise StoreBusy(
                    "too many object-store operations in progress; try again shortly"
                ) from None
            except httpx.HTTPError as exc:
                error = exc
            break
        self._pool_events += 1
        log.warning("object store unreachable: %s %s: %s", method, path, type(error).__name__)
        raise StoreUnavailable("the object store is unreachable")

    @staticmethod
    def _rejection(response: httpx.Response) -> StoreRejected:
        code, message = "Unknown", response.text[:300]
        try:
            data = response.json()
            code, message = str(data.get("Code", code)), str(data.get("Message", message))
        except ValueError:
            try:
                root = ET.fromstring(response.content)  # noqa: S314 - trusted local server
                code = root.findtext("Code") or code
                message = root.findtext("Message") or message
            except ET.ParseError:
                pass
        return StoreRejected(
            response.status_code, code, message, refusal_kind(response.status_code, code)
        )

    async def _admin(
        self,
        method: str,
        command: str,
        *,
        params: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> httpx.Response:
        return await self._send(
            method, ADMIN_PREFIX + command, params=params, body=body, iam_write=method != "GET"
        )

    async def _confirm_iam(self) -> None:
        """Return once MinIO is known to have finished loading IAM since anything suggested
        a new process (one proof at a time; the others wait for it).

        ``list-service-accounts`` (the root's own, normally none) is one of the admin calls
        MinIO holds until its IAM load has ended, and a cheap one: a scan under MinIO's read
        lock. ``groups`` also waits, but re-reads every group from the drive under MinIO's
        IAM write lock (seconds with a thousand groups). Its encrypted body is not read.
        """
        if self._iam_proven_at == self._pool_events:
            return
        async with self._iam_gate:
            if self._iam_proven_at == self._pool_events:
                return
            await self._send("GET", ADMIN_PREFIX + "list-service-accounts")
            self._iam_proven_at = self._pool_events

    async def _encrypt(self, payload: dict[str, Any]) -> bytes:
        raw = json.dumps(payload).encode()
        async with self._cipher_slots:
            return await asyncio.to_thread(encrypt_payload_fast, raw, self._secret_key)

    async def _decrypt(self, data: bytes) -> Any:
        async with self._kdf_slot:
            plain = await asyncio.to_thread(decrypt_payload, data, self._secret_key)
        return json.loads(plain or b"null")

    async def ping(self) -> None:
        try:
            response = await self._client.get(f"{self._base}/minio/health/live")
        except httpx.HTTPError:
            raise StoreUnavailable("the object store is unreachable") from None
        if response.status_code != 200:
            raise StoreUnavailable(f"the object store is unhealthy ({response.status_code})")
        # Proves the root credentials work too; a built-in policy, read from memory (``groups``
        # would re-read every group under MinIO's IAM write lock).
        await self._admin("GET", "info-canned-policy", params={"name": "readonly"})

    # -- users -----------------------------------------------------------------------------
    async def set_user(self, name: str, secret: str, keep: AccessKey | None = None) -> AccessKey:
        """MinIO's access key is the user name; ``keep`` needs no check (``secret`` is set)."""
        body = await self._encrypt({"secretKey": secret, "status": "enabled"})
        await self._admin("PUT", "add-user", params={"accessKey": name}, body=body)
        return AccessKey(name, secret)

    async def get_user(self, name: str) -> StoreUser | None:
        try:
            response = await self._admin("GET", "user-info", params={"accessKey": name})
        except StoreRejected as exc:
            if exc.not_found:
                return None
            raise
        data = response.json()
        return StoreUser(
            name=name,
            policies=_split_csv(data.get("policyName")),
            groups=tuple(sorted(data.get("memberOf") or ())),
            enabled=data.get("status", "enabled") == "enabled",
            access_keys=(name,),
        )

    async def authenticates(self, access_key: str, secret_key: str) -> bool:
        """ListBuckets signed with the user's own keys: an unknown key or a wrong secret is
        refused as such; any other answer (even AccessDenied) means the pair authenticated."""
        url = f"{self._base}/"
        headers = signed_headers(
            method="GET", url=url, body=b"", access_key=access_key, secret_key=secret_key
        )
        try:
            response = await self._client.request("GET", httpx.URL(url), headers=headers)
        except httpx.HTTPError:
            raise StoreUnavailable("the object store is unreachable") from None
        if response.status_code >= 500:
            raise StoreUnavailable(f"the object store failed (HTTP {response.status_code})")
        if response.status_code < 300:
            return True
        return self._rejection(response).code not in REJECTED_KEY_CODES

    async def list_users(self) -> list[str]:
        """Every user. Concurrent callers share a call, but only one that *starts* after they
        arrived (so nobody gets a list older than their call): its answer costs 64 MiB to
        open, and a burst of callers must not each pay it."""
        if self._users_now is None:
            task = self._users_now = self._start_listing_users(None)
        else:
            if self._users_next is None:
                self._users_next = self._start_listing_users(self._users_now)
            task = self._users_next
        # shield: a caller that goes away does not cancel the call the others wait for.
        return list(await asyncio.shield(task))

    def _start_listing_users(
        self, after: asyncio.Task[list[str]] | None
    ) -> asyncio.Task[list[str]]:
        task = asyncio.get_running_loop().create_task(self._list_users(after))
        task.add_done_callback(self._listed_users)
        return task

    def _listed_users(self, task: asyncio.Task[list[str]]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: callers got it through their shield
        if self._users_now is task:
            self._users_now, self._users_next = self._users_next, None

    async def _list_users(self, after: asyncio.Task[list[str]] | None) -> list[str]:
        if after is not None:
            await asyncio.wait([after])
        response = await self._admin("GET", "list-users")
        data = await self._decrypt(response.content)
        return sorted(data or {})

    async def delete_user(self, name: str) -> None:
        try:
            await self._admin("DELETE", "remove-user", params={"accessKey": name})
        except StoreRejected as exc:
            if not exc.not_found:
                raise

    # -- groups ----------------------------------------------------------------------------
    async def _update_group(self, group: str, members: Sequence[str], remove: bool) -> None:
        body = json.dumps({"group": group, "members": list(members), "isRemove": remove})
        await self._admin("PUT", "update-group-members", body=body.encode())

    async def add_group_members(self, group: str, members: Sequence[str]) -> None:
        await self._update_group(group, members, remove=False)

    async def remove_group_members(self, group: str, members: Sequence[str]) -> None:
        if not members:
            return
        try:
            await self._update_group(group, members, remove=True)
        except StoreRejected as exc:
            if not exc.not_found:
                raise

    async def get_group(self, group: str) -> StoreGroup | None:
        try:
            response = await self._admin("GET", "group", params={"group": group})
        except StoreRejected as exc:
            if exc.not_found:
                return None
            raise
        data = response.json()
        return StoreGroup(
            name=group,
            members=tuple(sorted(data.get("members") or ())),
            policies=_split_csv(data.get("policy")),
            enabled=data.get("status", "enabled") == "enabled",
        )

    async def list_groups(self) -> list[str]:
        response = await self._admin("GET", "groups")
        return sorted(response.json() or [])

    async def delete_group(self, group: str) -> None:
        try:
            await self._update_group(group, [], remove=True)
        except StoreRejected as exc:
            if not exc.not_found:
                raise

    # -- policies --------------------------------------------------------------------------
    async def put_policy(self, name: str, document: dict[str, Any]) -> None:
        body = json.dumps(document, separators=(",", ":")).encode()
        await self._admin("PUT", "add-canned-policy", params={"name": name}, body=body)

    async def get_policy(self, name: str) -> dict[str, Any] | None:
        try:
            response = await self._admin("GET", "info-canned-policy", params={"name": name})
        except StoreRejected as exc:
            if exc.not_found:
                return None
            raise
        data: dict[str, Any] = response.json()
        if "Policy" in data and "Statement" not in data:
            inner: dict[str, Any] = data["Policy"]
            return inner
        return data

    async def list_policies(self) -> list[str]:
        response = await self._admin("GET", "list-canned-policies")
        return sorted(response.json() or {})

    async def delete_policy(self, name: str) -> None:
        try:
            await self._admin("DELETE", "remove-canned-policy", params={"name": name})
        except StoreRejected as exc:
            if not exc.not_found:
                raise

    async def _set_policies(self, entity: str, names: Sequence[str], is_group: bool) -> None:
        params = {
            "policyName": ",".join(sorted(set(names))),
            "userOrGroup": entity,
            "isGroup": "true" if is_group else "false",
        }
        await self._admin("PUT", "set-user-or-group-policy", params=params)

    async def set_user_policies(self, user: str, names: Sequence[str]) -> None:
        await self._set_policies(user, names, is_group=False)

    async def set_group_policies(self, group: str, names: Sequence[str]) -> None:
        await self._set_policies(group, names, is_group=True)

    # -- data ------------------------------------------------------------------------------
    async def _ensure_bucket(self, bucket: str) -> None:
        try:
            await self._send("PUT", f"/{bucket}")
        except StoreRejected as exc:
            if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise

    async def ensure_buckets(self, buckets: Sequence[str]) -> None:
        await asyncio.gather(*(self._ensure_bucket(b) for b in sorted(set(buckets))))

    async def put_objects(self, objects: Sequence[StoreObject]) -> None:
        await asyncio.gather(
            *(self._send("PUT", f"/{o.bucket}/{o.key}", body=o.body) for o in objects)
        )

    async def _list_page(
        self, bucket: str, prefix: str, token: str | None
    ) -> tuple[list[str], str | None]:
        """One page (≤1000 keys) and the continuation token, or None at the end."""
        params = {"list-type": "2", "prefix": prefix, "max-keys": str(PAGE_SIZE)}
        if token:
            params["continuation-token"] = token
        try:
            response = await self._send("GET", f"/{bucket}", params=params)
        except StoreRejected as exc:
            if exc.not_found:
                return [], None
            raise
        root = ET.fromstring(response.content)  # noqa: S314 - trusted local server
        keys = [el.text or "" for el in root.iter(f"{S3_NS}Key")]
        following = root.findtext(f"{S3_NS}NextContinuationToken")
        if root.findtext(f"{S3_NS}IsTruncated") != "true" or not following:
            return keys, None
        return keys, following

    async def list_keys(self, bucket: str, prefix: str) -> list[str]:
        """Every key under ``prefix`` (not on the port: for tools and tests)."""
        keys: list[str] = []
        token: str | None = None
        while True:
            page, token = await self._list_page(bucket, prefix, token)
            keys += page
            if token is None:
                return keys

    async def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete page by page, so memory stays flat however much data the prefix holds.

        Deleting while listing is safe with S3 v2 listings: the continuation token is a
        position in key order, not an offset. A DeleteObjects call answers 200 even when some
        keys were not deleted (each is an ``<Error>`` entry), so the answer is read, and the
        prefix is listed once more at the end: anything still there (refused, locked, or
        written meanwhile) raises ``DataNotDeleted``, and repeating the call resumes.
        """
        deleted = 0
        refused: list[DeleteFailure] = []
        token: str | None = None
        while True:
            batch, token = await self._list_page(bucket, prefix, token)
            if batch:
                failures = await self._delete_batch(bucket, batch)
                refused += failures
                deleted += len(batch) - len(failures)
            if token is None:
                break
        remaining, _ = await self._list_page(bucket, prefix, None)
        if refused or remaining:
            raise not_deleted(bucket, prefix, refused, remaining)
        return deleted

    async def _delete_batch(self, bucket: str, keys: Sequence[str]) -> list[DeleteFailure]:
        """One DeleteObjects call (Quiet: only failures are listed); returns the failures."""
        root = ET.Element("Delete")
        ET.SubElement(root, "Quiet").text = "true"
        for key in keys:
            ET.SubElement(ET.SubElement(root, "Object"), "Key").text = key
        body = ET.tostring(root)
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()  # noqa: S324 - S3 needs it
        response = await self._send(
            "POST",
            f"/{bucket}",
            params={"delete": ""},
            body=body,
            extra_headers={"Content-MD5": md5},
        )
        return parse_delete_failures(response.content)


def parse_delete_failures(content: bytes) -> list[DeleteFailure]:
    """The per-key ``<Error>`` entries of a DeleteObjects answer (with or without namespace)."""
    if not content.strip():
        return []
    root = ET.fromstring(content)  # noqa: S314 - trusted local server
    failures = []
    for element in root.iter():
        if element.tag.rpartition("}")[2] != "Error":
            continue
        fields = {child.tag.rpartition("}")[2]: child.text or "" for child in element}
        failures.append(
            DeleteFailure(
                fields.get("Key", ""), fields.get("Code", "Unknown"), fields.get("Message", "")
            )
        )
    return failures
