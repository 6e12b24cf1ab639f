"""``GET /tenants``' body: each tenant rendered once, the caller's two flags spliced per call.

A summary is the same for every caller except ``is_member`` and ``is_steward``, and it only
changes when the tenant's groups change (the membership cache hands out new ``StoreGroup``
objects only after a change) or its metadata row does. Building and serialising one model
per tenant per call grew with the tenant count (82 ms a call at 601 tenants on the loaded
VM, issue 12); here a call costs a lookup and a join per tenant. The bytes are exactly what
``TypeAdapter(list[TenantSummary]).dump_json`` gives (tested).

The whole listing is also kept (``keep``/``reuse``): while the rows' fingerprint and the
membership cache's stamp are those it was built from, and its group entries are not yet due
for a refresh, a call only splices the caller's flags into it. With 2 001 tenants the
rebuild (rows decoded, 4 002 cache lookups, the join) was ~12 ms of CPU a call, so 16 at once
queued for half a second (issue 12); a reuse reads one row and touches only the caller's
tenants.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from minio_manager.governance.layout import read_only_group
from minio_manager.objectstore.port import StoreGroup
from minio_manager.tenants.schemas import TenantSummary
from minio_manager.tenants.store import ListingRow

_TAIL = ',"is_member":false,"is_steward":false}'
_FLAGS = {
    (member, steward): (
        f',"is_member":{str(member).lower()},"is_steward":{str(steward).lower()}}}'
    ).encode()
    for member in (False, True)
    for steward in (False, True)
}


@dataclass(frozen=True)
class _Rendered:
    read_write: StoreGroup | None
    read_only: StoreGroup | None
    metadata: tuple[str | None, ...] | None
    members: frozenset[str]
    head: bytes  # the summary's JSON up to the caller's flags


@dataclass(frozen=True)
class Snapshot:
    """A whole listing as every caller sees it but for their two flags."""

    names: Sequence[str]
    heads: list[bytes]  # each summary's JSON up to the flags
    parts: list[bytes]  # each summary with both flags false
    index: dict[str, int]  # tenant -> position
    member_of: dict[str, tuple[int, ...]]  # user -> positions of the tenants they are in


@dataclass(frozen=True)
class Kept:
    """A snapshot and what it was built from (see ``ListingRenderer.reuse``)."""

    snapshot: Snapshot
    fingerprint: str
    stamp: int
    fetched_at: float  # the oldest group entry it was built from


class ListingRenderer:
    """Per-process cache of rendered summaries (entries of vanished tenants are dropped) and
    of the last whole listing."""

    def __init__(self) -> None:
        self._rendered: dict[str, _Rendered] = {}
        self.kept: Kept | None = None

    def build(
        self,
        names: Sequence[str],
        groups: Mapping[str, StoreGroup | None],
        metadata: Mapping[str, ListingRow],
    ) -> Snapshot:
        """The summaries of ``names`` (in that order); ``ListingRow.stewarded`` is ignored."""
        kept: dict[str, _Rendered] = {}
        heads: list[bytes] = []
        member_of: dict[str, list[int]] = {}
        for position, name in enumerate(names):
            rw, ro = groups.get(name), groups.get(read_only_group(name))
            row = metadata.get(name)
            fields = tuple(row[:4]) if row is not None else None
            found = self._rendered.get(name)
            if (
                found is None
                or found.read_write is not rw
                or found.read_only is not ro
                or found.metadata != fields
            ):
                found = _render(name, rw, ro, row)
            kept[name] = found
            heads.append(found.head)
            for user in found.members:
                member_of.setdefault(user, []).append(position)
        self._rendered = kept
        return Snapshot(
            names,
            heads,
            [head + _FLAGS[(False, False)] for head in heads],
            {name: position for position, name in enumerate(names)},
            {user: tuple(positions) for user, positions in member_of.items()},
        )

    @staticmethod
    def splice(snapshot: Snapshot, user: str, stewarded: Collection[str]) -> bytes:
        """The JSON list as ``user``, steward of ``stewarded``, sees it."""
        parts = snapshot.parts
        member = snapshot.member_of.get(user, ())
        steward = {snapshot.index[t] for t in stewarded if t in snapshot.index}
        if member or steward:
            parts = list(parts)
            for position in {*member, *steward}:
                flags = _FLAGS[(position in member, position in steward)]
                parts[position] = snapshot.heads[position] + flags
        return b"[" + b",".join(parts) + b"]"

    def render(
        self,
        names: Sequence[str],
        groups: Mapping[str, StoreGroup | None],
        metadata: Mapping[str, ListingRow],
        user: str,
    ) -> bytes:
        """The JSON list of summaries of ``names`` (in that order) as ``user`` sees them."""
        stewarded = [name for name, row in metadata.items() if row.stewarded]
        return self.splice(self.build(names, groups, metadata), user, stewarded)

    def keep(self, snapshot: Snapshot, fingerprint: str, stamp: int, fetched_at: float) -> None:
        """Keep ``snapshot``, built from rows with ``fingerprint`` and group entries read at
        ``stamp``, the oldest fetched at ``fetched_at``."""
        self.kept = Kept(snapshot, fingerprint, stamp, fetched_at)

    def reuse(
        self,
        fingerprint: str | None,
        stamp: int,
        fresh: Callable[[float], bool],
        user: str,
        stewarded: Collection[str],
    ) -> bytes | None:
        """The kept listing as ``user`` sees it, or None when it may be out of date."""
        kept = self.kept
        if (
            kept is None
            or fingerprint != kept.fingerprint
            or stamp != kept.stamp
            or not fresh(kept.fetched_at)
        ):
            return None
        return self.splice(kept.snapshot, user, stewarded)


def _render(
    name: str, rw: StoreGroup | None, ro: StoreGroup | None, row: ListingRow | None
) -> _Rendered:
    members = frozenset(
        (rw.members if rw is not None else ()) + (ro.members if ro is not None else ())
    )
    summary = TenantSummary(
        tenant_name=name,
        display_name=row.display_name if row else None,
        description=row.description if row else None,
        website=row.website if row else None,
        organization=row.organization if row else None,
        member_count=len(members),
        is_member=False,
        is_steward=False,
    ).model_dump_json()
    if not summary.endswith(_TAIL):
        raise AssertionError("TenantSummary must end with is_member, is_steward")
    head = summary[: -len(_TAIL)].encode()
    return _Rendered(rw, ro, tuple(row[:4]) if row is not None else None, members, head)
