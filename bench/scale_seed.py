"""Bulk seeding for ``bench/scale.py``: users and tenants as the service leaves them, fast.

A real first login costs ~10 admin calls and ~25 database round trips inside the service; on
the shared VM that seeded 2.5–3 users/s (10 000 ≈ 55 min). Here the same end state is built
in bulk, with the service's own code for everything that decides content:

- store: MinIO's ``import-iam`` admin call (a zip: users with their secrets, the rendered
  policy documents, group memberships, policy attachments), a chunk of users per call, so
  MinIO applies the IAM writes itself instead of one signed HTTP call each; the marker
  objects by S3 PUT (``SCALE_SEED_MARKERS``, concurrently, bounded);
- documents: ``governance.placement.place`` + ``render_document`` from the layout's
  templates with no received grants — what ``PolicySync`` renders for a new principal;
- records by ``COPY``: ``user_credentials`` (the secret encrypted by ``pgp_sym_encrypt``
  inside PostgreSQL with the service's key, as ``credentials/store.py`` does), ``managed_users``,
  ``user_profiles``, ``policy_documents`` (clean, with sizes), ``tenant_metadata`` and the
  audit rows a login / group creation writes.

``scale.py`` checks the result: sampled users get their seeded pair from ``GET /credentials/``
and it works at S3, and ``regenerate-policies`` (which compares every document with the
store) is run right after seeding and reports how many documents it had to write.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from minio_manager.credentials.secrets import new_secret
from minio_manager.governance.layout import (
    GLOBAL_GROUP,
    Grant,
    Layout,
    group_policy_name,
    read_only_group,
    user_home_policy_name,
    user_system_policy_name,
)
from minio_manager.governance.placement import as_grants, place
from minio_manager.governance.policies import policy_name_at, render_document
from minio_manager.objectstore.minio import MinioStore
from minio_manager.objectstore.port import StoreObject
from minio_manager.provisioning.groups import GroupProvisioner
from minio_manager.provisioning.users import UserProvisioner

IMPORT_CHUNK = 500
"""Users (or tenants) per ``import-iam`` call: one call stays a bounded request."""
MARKER_CONCURRENCY = 32


@dataclass
class Rendered:
    """One principal's documents, as ``PolicySync`` would write and record them."""

    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[tuple[str, int, str, int]] = field(default_factory=list)
    """(family, position, grants JSON, size) for ``policy_documents``."""


def render(families: Sequence[tuple[str, Sequence[Grant]]], max_bytes: int) -> Rendered:
    out = Rendered()
    for base, template in families:
        placement = place({}, template, (), max_bytes=max_bytes)
        for position, levels in sorted(placement.documents.items()):
            out.documents[policy_name_at(base, position)] = render_document(as_grants(levels))
            grants = sorted([b, k, w] for (b, k), w in levels.items())
            out.rows.append((base, position, json.dumps(grants), placement.sizes[position]))
    return out


class Seeder:
    """Provisioned users and tenants in bulk (see the module doc)."""

    def __init__(self, store: MinioStore, layout: Layout, encryption_key: str) -> None:
        self.store = store
        self.layout = layout
        self._key = encryption_key
        # The provisioners' marker lists (no call is made through them).
        self._users = UserProvisioner(store, layout, None, None, None)  # type: ignore[arg-type]
        self._groups = GroupProvisioner(store, layout, None)  # type: ignore[arg-type]

    # -- store --------------------------------------------------------------------------------
    async def _import(self, assets: dict[str, Any]) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in assets.items():
                archive.writestr(f"iam-assets/{name}", json.dumps(content))
        response = await self.store._admin("PUT", "import-iam-v2", body=buffer.getvalue())
        failed = response.json().get("failed") or {}
        if any(failed.values()):
            raise RuntimeError(f"import-iam refused some entities: {str(failed)[:300]}")

    async def _markers(self, objects: list[StoreObject]) -> None:
        gate = asyncio.Semaphore(MARKER_CONCURRENCY)

        async def one(chunk: list[StoreObject]) -> None:
            async with gate:
                await self.store.put_objects(chunk)

        chunks = [objects[i : i + 8] for i in range(0, len(objects), 8)]
        await asyncio.gather(*(one(c) for c in chunks))

    # -- users --------------------------------------------------------------------------------
    async def users(
        self, conn: Any, names: Sequence[str], *, markers: bool
    ) -> tuple[dict[str, str], dict[str, float]]:
        """Seed ``names`` as first logins would; returns (name → secret, phase → seconds)."""
        times: dict[str, float] = {}
        secrets_ = {name: new_secret() for name in names}
        began = time.perf_counter()
        rendered = {
            name: render(
                [
                    (user_home_policy_name(name), self.layout.user_home_grants(name)),
                    (user_system_policy_name(name), self.layout.user_system_grants(name)),
                ],
                self.store.policy_max_bytes,
            )
            for name in names
        }
        times["render"] = time.perf_counter() - began

        began = time.perf_counter()
        marker_task = None
        if markers:
            objects = [o for name in names for o in self._users._markers(name)]
            marker_task = asyncio.ensure_future(self._markers(objects))
        for i in range(0, len(names), IMPORT_CHUNK):
            chunk = names[i : i + IMPORT_CHUNK]
            await self._import(
                {
                    "policies.json": {
                        n: d for name in chunk for n, d in rendered[name].documents.items()
                    },
                    "users.json": {
                        name: {"secretKey": secrets_[name], "status": "enabled"} for name in chunk
                    },
                    "groups.json": {GLOBAL_GROUP: {"members": list(chunk), "status": "enabled"}},
                    "user_mappings.json": {
                        name: {"policy": ",".join(sorted(rendered[name].documents))}
                        for name in chunk
                    },
                }
            )
        times["import-iam"] = time.perf_counter() - began
        if marker_task is not None:
            began = time.perf_counter()
            await marker_task
            times["markers (after import)"] = time.perf_counter() - began

        began = time.perf_counter()
        await conn.execute("CREATE TEMP TABLE IF NOT EXISTS seed_secrets (u text, s text)")
        await conn.execute("TRUNCATE seed_secrets")
        await conn.copy_records_to_table(
            "seed_secrets", records=list(secrets_.items()), columns=["u", "s"]
        )
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO user_credentials (username, access_key, secret_key)"
                " SELECT u, u, pgp_sym_encrypt(s, $1) FROM seed_secrets",
                self._key,
            )
            await conn.copy_records_to_table(
                "managed_users",
                records=[(n, "provisioned") for n in names],
                columns=["username", "source"],
            )
            await conn.copy_records_to_table(
                "user_profiles",
                records=[(n, n, f"{n}@bench.example") for n in names],
                columns=["username", "display_name", "email"],
            )
            await self._document_rows(conn, [r for n in names for r in rendered[n].rows])
            await conn.copy_records_to_table(
                "audit_log",
                records=[(n, "credentials.issue", n) for n in names],
                columns=["actor", "action", "target"],
            )
        await conn.execute("TRUNCATE seed_secrets")
        times["records"] = time.perf_counter() - began
        return secrets_, times

    # -- tenants ------------------------------------------------------------------------------
    async def tenants(
        self, conn: Any, members: dict[str, list[str]], admin: str, *, markers: bool
    ) -> dict[str, float]:
        """Seed tenants as ``POST /management/groups/{g}`` leaves them, plus members
        (``members[g]``: the first four join ``g``, the rest ``g``ro)."""
        times: dict[str, float] = {}
        names = sorted(members)
        began = time.perf_counter()
        rendered: dict[str, Rendered] = {}
        for group in names:
            for principal, write in ((group, True), (read_only_group(group), False)):
                rendered[principal] = render(
                    [(group_policy_name(principal), self.layout.group_grants(group, write=write))],
                    self.store.policy_max_bytes,
                )
        times["render"] = time.perf_counter() - began

        began = time.perf_counter()
        marker_task = None
        if markers:
            objects = [o for group in names for o in self._groups._markers(group)]
            marker_task = asyncio.ensure_future(self._markers(objects))
        for i in range(0, len(names), IMPORT_CHUNK):
            chunk = [p for g in names[i : i + IMPORT_CHUNK] for p in (g, read_only_group(g))]
            groups = {}
            for group in names[i : i + IMPORT_CHUNK]:
                groups[group] = {"members": members[group][:4], "status": "enabled"}
                groups[read_only_group(group)] = {
                    "members": members[group][4:],
                    "status": "enabled",
                }
            await self._import(
                {
                    "policies.json": {
                        n: d for p in chunk for n, d in rendered[p].documents.items()
                    },
                    "groups.json": groups,
                    "group_mappings.json": {
                        p: {"policy": ",".join(sorted(rendered[p].documents))} for p in chunk
                    },
                }
            )
        times["import-iam"] = time.perf_counter() - began
        if marker_task is not None:
            began = time.perf_counter()
            await marker_task
            times["markers (after import)"] = time.perf_counter() - began

        began = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table(
                "tenant_metadata",
                records=[(g, admin) for g in names],
                columns=["tenant_name", "created_by"],
            )
            await self._document_rows(conn, [r for p in rendered.values() for r in p.rows])
            await conn.copy_records_to_table(
                "audit_log",
                records=[(admin, "group.create", g, '{"existing": false}') for g in names],
                columns=["actor", "action", "target", "details"],
            )
        times["records"] = time.perf_counter() - began
        return times

    @staticmethod
    async def _document_rows(conn: Any, rows: list[tuple[str, int, str, int]]) -> None:
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS seed_documents"
            " (family text, position int, grants text, size int)"
        )
        await conn.execute("TRUNCATE seed_documents")
        await conn.copy_records_to_table(
            "seed_documents", records=rows, columns=["family", "position", "grants", "size"]
        )
        await conn.execute(
            "INSERT INTO policy_documents (family, position, grants, size, dirty)"
            " SELECT family, position, grants::jsonb, size, false FROM seed_documents"
        )
