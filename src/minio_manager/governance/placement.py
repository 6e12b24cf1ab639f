"""Stable placement of grants into a principal's policy documents (docs/decisions.md).

MinIO refuses documents over 20 KiB, so a principal's grants are spread over ``{name}``,
``{name}--2``, ``{name}--3``, … (position 1, 2, 3, …). Placement is *stable*: a grant stays in
the document it was placed in until it is revoked, and a new grant goes into the first
document with room (or a new one), so one share or unshare changes one document and the others
need not be written again. The template always sits in position 1.

Document sizes come from an exact additive model of the compact JSON that ``render_document``
produces (a fixed cost per bucket and statement, plus a cost per grant), so packing a thousand
grants serialises nothing; only the documents that are written get rendered. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from minio_manager.errors import PolicyOperationError
from minio_manager.governance.layout import Grant
from minio_manager.governance.policies import (
    ARN_PREFIX,
    EMPTY_DOCUMENT_SIZE,
    MAX_POLICY_BYTES,
    collapse,
    document_size,
    render_document,
)

Where = tuple[str, str]
"""(bucket, key): what one grant covers; its level is kept beside it."""

FIRST = 1
"""The position of the document named like the family itself (it holds the template)."""


def _quoted_len(text: str) -> int:
    """Length of ``json.dumps(text)`` without building it (plain ASCII is the usual case)."""
    if text.isascii() and text.isprintable():
        return len(text) + 2 + text.count('"') + text.count("\\")
    return len(json.dumps(text))


def grant_cost(bucket: str, key: str, write: bool) -> int:
    """Bytes one grant adds to a document that already has its bucket's statements.

    Each list item costs its quoted text plus one separator: ``P`` and ``P/*`` in the
    ListBucket condition and in GetObject; for write also in PutObject, and ``P/*`` in
    DeleteObject. ``ARN/P`` is ``len(ARN)`` longer than ``P`` quoted.
    """
    quoted = _quoted_len(key)
    arn = len(f"{ARN_PREFIX}{bucket}/")
    cost = (quoted + 1) + (quoted + 3) + (quoted + arn + 1) + (quoted + arn + 3)
    if write:
        cost += (quoted + arn + 1) + (quoted + arn + 3) + (quoted + arn + 3)
    return cost


@lru_cache(maxsize=256)
def _bucket_cost(bucket: str, writes: bool) -> int:
    """Bytes of a bucket's statements without their grant items (measured once, from a render)."""
    probe = Grant(bucket, "k", writes)
    return (
        document_size(render_document([probe]))
        - EMPTY_DOCUMENT_SIZE
        + 1
        - grant_cost(bucket, "k", writes)
    )


def document_bytes(grants: Iterable[Grant]) -> int:
    """The exact size ``document_size(render_document(grants))`` has, computed without it."""
    doc = _Document()
    for (bucket, key), write in collapse(grants).items():
        doc.add((bucket, key), write)
    return doc.size


class _Document:
    """One document being packed: its grants and its size, kept up to date on every change."""

    def __init__(self) -> None:
        self.levels: dict[Where, bool] = {}
        self._grants_cost = 0
        self._buckets: dict[str, list[int]] = {}  # bucket -> [grants, write grants]

    @property
    def size(self) -> int:
        if not self.levels:
            return EMPTY_DOCUMENT_SIZE
        buckets = sum(_bucket_cost(b, writes > 0) for b, (_, writes) in self._buckets.items())
        return EMPTY_DOCUMENT_SIZE - 1 + buckets + self._grants_cost

    def growth(self, where: Where, write: bool) -> int:
        """Bytes adding a grant (not yet present) would add."""
        bucket = where[0]
        counts = self._buckets.get(bucket)
        before = 0 if counts is None else _bucket_cost(bucket, counts[1] > 0)
        writes = write or (counts is not None and counts[1] > 0)
        return grant_cost(*where, write) + _bucket_cost(bucket, writes) - before

    def add(self, where: Where, write: bool) -> None:
        self.levels[where] = write
        self._grants_cost += grant_cost(*where, write)
        counts = self._buckets.setdefault(where[0], [0, 0])
        counts[0] += 1
        counts[1] += write

    def remove(self, where: Where) -> None:
        write = self.levels.pop(where)
        self._grants_cost -= grant_cost(*where, write)
        counts = self._buckets[where[0]]
        counts[0] -= 1
        counts[1] -= write
        if not counts[0]:
            del self._buckets[where[0]]

    def grants(self) -> tuple[Grant, ...]:
        return tuple(Grant(b, k, w) for (b, k), w in self.levels.items())

    def holds_exactly(self, grants: Sequence[Grant]) -> bool:
        return len(grants) == len(self.levels) and all(
            self.levels.get((g.bucket, g.key)) == g.write for g in grants
        )


@dataclass(frozen=True)
class Placement:
    """Every document of one family by position, and how it differs from the previous one."""

    documents: Mapping[int, tuple[Grant, ...]]
    """Position → grants (in no particular order: rendering sorts)."""
    changed: frozenset[int]
    """Positions whose grants differ from the previous placement (new ones included)."""
    removed: frozenset[int]
    """Previous positions that hold nothing now (their documents are to be deleted)."""


def _packing_order(where: Where) -> tuple[bool, str, str]:
    # Template-like wildcard grants first, so an unpinned template still lands in position 1.
    return ("*" not in where[1], where[0], where[1])


def place(
    previous: Mapping[int, Sequence[Grant]],
    template: Iterable[Grant],
    received: Iterable[Grant],
    *,
    max_bytes: int = MAX_POLICY_BYTES,
) -> Placement:
    """Place the template and the received grants, moving as little as possible.

    ``previous`` is the last placement (position → grants). A grant placed before stays where
    it is (at its current level); a revoked one leaves its document; a new one goes into the
    first document it fits in, or the lowest free position. A document that a level change
    (or a smaller limit) pushed over ``max_bytes`` gives up its last grants, which are then
    placed like new ones. Duplicates collapse, write subsumes read on the same key.

    Raises ``ValueError`` without grants or for a malformed grant, ``PolicyOperationError``
    when one grant (or the template) alone exceeds ``max_bytes``.
    """
    template = list(template)  # iterated twice
    pinned = collapse(template)
    levels = collapse([*template, *received])
    if not levels:
        raise ValueError("cannot render a policy without grants")
    docs: dict[int, _Document] = {FIRST: _Document()}
    for where in pinned:
        docs[FIRST].add(where, levels[where])
    placed = set(pinned)
    for position in sorted(previous):
        for grant in previous[position]:
            where = (grant.bucket, grant.key)
            if where in levels and where not in placed:
                docs.setdefault(position, _Document()).add(where, levels[where])
                placed.add(where)
    for doc in docs.values():
        if doc.size <= max_bytes:
            continue
        for where in sorted(doc.levels, key=_packing_order, reverse=True):
            if doc.size <= max_bytes:
                break
            if where not in pinned:
                doc.remove(where)
                placed.discard(where)
        if doc.size > max_bytes:
            raise PolicyOperationError(
                f"the template alone needs {doc.size} bytes of policy, over the {max_bytes}-byte"
                " limit"
            )
    docs = {p: d for p, d in docs.items() if p == FIRST or d.levels}
    _place_new(docs, sorted(set(levels) - placed, key=_packing_order), levels, max_bytes)
    changed = frozenset(
        p for p, doc in docs.items() if p not in previous or not doc.holds_exactly(previous[p])
    )
    documents = {p: docs[p].grants() if p in changed else tuple(previous[p]) for p in sorted(docs)}
    return Placement(documents, changed, frozenset(set(previous) - set(documents)))


def _place_new(
    docs: dict[int, _Document], new: Sequence[Where], levels: Mapping[Where, bool], max_bytes: int
) -> None:
    """First fit; a document that refused a grant is closed for the rest of this call, which
    keeps packing linear and makes packing from scratch plain greedy."""
    closed: set[int] = set()
    for where in new:
        write = levels[where]
        alone = _Document()
        alone.add(where, write)
        if alone.size > max_bytes:
            raise PolicyOperationError(
                f"Grant on {where[0]}/{where[1][:80]} alone needs {alone.size} bytes of policy,"
                f" over the {max_bytes}-byte limit"
            )
        target = None
        for position in sorted(docs):
            if position in closed:
                continue
            doc = docs[position]
            if doc.size + doc.growth(where, write) <= max_bytes:
                target = doc
                break
            closed.add(position)
        if target is None:
            position = next(p for p in range(FIRST + 1, len(docs) + 3) if p not in docs)
            target = docs[position] = _Document()
        target.add(where, write)


def render_policy_documents(
    grants: Iterable[Grant],
    *,
    max_bytes: int = MAX_POLICY_BYTES,
    pinned: Iterable[Grant] = (),
) -> list[dict[str, Any]]:
    """Render grants from scratch into as few documents as greedy packing gives, each at most
    ``max_bytes`` compact bytes, the ``pinned`` grants (the template) in the first."""
    placement = place({}, pinned, grants, max_bytes=max_bytes)
    return [render_document(placement.documents[p]) for p in sorted(placement.documents)]
