"""Stable placement of grants into a principal's policy documents (docs/decisions.md).

MinIO refuses documents over 20 KiB, so a principal's grants are spread over ``{name}``,
``{name}--2``, ``{name}--3``, … (position 1, 2, 3, …). Placement is *stable*: a grant stays in
the document it was placed in until it is revoked, and a new grant goes into the first
document with room (or a new one), so one share or unshare changes one document and the others
need not be written again. The template always sits in position 1.

Document sizes come from an exact additive model of the compact JSON that ``render_document``
produces (a fixed cost per bucket and statement, plus a cost per grant), so packing a thousand
grants serialises nothing; only the documents that are written get rendered. A document that
did not change keeps the size recorded with it, so an update costs a dictionary lookup per
grant held plus work in proportion to what changed. Pure: no I/O.
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


Levels = dict[Where, bool]
"""A document's grants: (bucket, key) → write."""


def as_grants(levels: Mapping[Where, bool]) -> list[Grant]:
    return [Grant(bucket, key, write) for (bucket, key), write in levels.items()]


def document_bytes(grants: Iterable[Grant]) -> int:
    """The exact size ``document_size(render_document(grants))`` has, computed without it."""
    return _Document(collapse(grants)).size


@dataclass(frozen=True)
class Previous:
    """A document as last written: its grants and, when recorded, its size."""

    levels: Mapping[Where, bool]
    size: int | None = None


class _Document:
    """One document being packed. Sizes are tallied per grant only once the document changes
    (or has no recorded size); an unchanged document costs nothing but its recorded size."""

    def __init__(self, levels: Levels | None = None, size: int | None = None) -> None:
        self.levels: Levels = levels if levels is not None else {}
        self._size = size
        self._buckets: dict[str, list[int]] | None = None  # bucket -> [grants, write grants]
        self._grants_cost = 0

    def _tally(self) -> dict[str, list[int]]:
        if self._buckets is None:
            self._buckets = {}
            for where, write in self.levels.items():
                self._count(where, write, 1)
        return self._buckets

    def _count(self, where: Where, write: bool, sign: int) -> None:
        assert self._buckets is not None
        self._grants_cost += sign * grant_cost(*where, write)
        counts = self._buckets.setdefault(where[0], [0, 0])
        counts[0] += sign
        counts[1] += sign * write
        if not counts[0]:
            del self._buckets[where[0]]

    @property
    def size(self) -> int:
        if self._size is None:
            if not self.levels:
                return EMPTY_DOCUMENT_SIZE
            buckets = self._tally()
            fixed = sum(_bucket_cost(b, writes > 0) for b, (_, writes) in buckets.items())
            self._size = EMPTY_DOCUMENT_SIZE - 1 + fixed + self._grants_cost
        return self._size

    def fits(self, where: Where, write: bool, max_bytes: int) -> bool:
        """Whether adding a grant (not yet present) keeps the document within ``max_bytes``."""
        size, cost = self.size, grant_cost(*where, write)
        if size + cost > max_bytes:  # too big even where its bucket's statements exist
            return False
        if size + cost + _bucket_cost(where[0], True) <= max_bytes:  # fits even with new ones
            return True
        counts = self._tally().get(where[0])
        before = 0 if counts is None else _bucket_cost(where[0], counts[1] > 0)
        writes = write or (counts is not None and counts[1] > 0)
        return size + cost + _bucket_cost(where[0], writes) - before <= max_bytes

    def add(self, where: Where, write: bool) -> None:
        self._tally()
        self.levels[where] = write
        self._count(where, write, 1)
        self._size = None

    def remove(self, where: Where) -> None:
        self._tally()
        self._count(where, self.levels.pop(where), -1)
        self._size = None


@dataclass(frozen=True)
class Placement:
    """Every document of one family by position, and how it differs from the previous one."""

    documents: Mapping[int, Mapping[Where, bool]]
    sizes: Mapping[int, int]
    """Exact compact JSON size of each document."""
    changed: frozenset[int]
    """Positions whose grants differ from the previous placement (new ones included)."""
    removed: frozenset[int]
    """Previous positions that hold nothing now (their documents are to be deleted)."""


def _packing_order(where: Where) -> tuple[bool, str, str]:
    # Template-like wildcard grants first, so an unpinned template still lands in position 1.
    return ("*" not in where[1], where[0], where[1])


def place(
    previous: Mapping[int, Previous],
    template: Iterable[Grant],
    received: Iterable[Grant],
    *,
    max_bytes: int = MAX_POLICY_BYTES,
) -> Placement:
    """Place the template and the received grants, moving as little as possible.

    ``previous`` is the last placement (position → document). A grant placed before stays
    where it is (at its current level); a revoked one leaves its document; a new one goes into
    the first document it fits in, or the lowest free position. A document that a level change
    (or a smaller limit) pushed over ``max_bytes`` gives up its last grants, which are then
    placed like new ones. Duplicates collapse, write subsumes read on the same key.

    Raises ``ValueError`` without grants or for a malformed grant, ``PolicyOperationError``
    when one grant (or the template) alone exceeds ``max_bytes``.
    """
    template, received = list(template), list(received)  # iterated more than once
    pinned = collapse(template)
    levels = collapse([*template, *received])
    if not levels:
        raise ValueError("cannot render a policy without grants")
    placed = set(pinned)
    docs: dict[int, _Document] = {}
    for position in sorted({FIRST, *previous}):
        before = previous.get(position, Previous({}))
        kept: Levels = {w: levels[w] for w in pinned} if position == FIRST else {}
        for where in before.levels:
            if where in levels and where not in placed:
                kept[where] = levels[where]
                placed.add(where)
        same = kept == before.levels
        docs[position] = _Document(kept, before.size if same else None)
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
    if any(d.size > max_bytes for d in docs.values()):
        # Only a recorded size that is wrong (another release's model) can lead here: place
        # again with every size computed.
        if any(d.size is not None for d in previous.values()):
            unsized = {p: Previous(d.levels) for p, d in previous.items()}
            return place(unsized, template, received, max_bytes=max_bytes)
        raise PolicyOperationError("a policy document grew past the size limit")
    changed = frozenset(
        p for p, d in docs.items() if p not in previous or d.levels != previous[p].levels
    )
    return Placement(
        documents={p: docs[p].levels for p in sorted(docs)},
        sizes={p: docs[p].size for p in sorted(docs)},
        changed=changed,
        removed=frozenset(set(previous) - set(docs)),
    )


def _place_new(
    docs: dict[int, _Document], new: Sequence[Where], levels: Mapping[Where, bool], max_bytes: int
) -> None:
    """First fit; a document that refused a grant is closed for the rest of this call, which
    keeps packing linear and makes packing from scratch plain greedy."""
    closed: set[int] = set()
    for where in new:
        write = levels[where]
        alone = _Document({where: write}).size
        if alone > max_bytes:
            raise PolicyOperationError(
                f"Grant on {where[0]}/{where[1][:80]} alone needs {alone} bytes of policy,"
                f" over the {max_bytes}-byte limit"
            )
        target = None
        for position in sorted(docs):
            if position in closed:
                continue
            if docs[position].fits(where, write, max_bytes):
                target = docs[position]
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
    return [render_document(as_grants(placement.documents[p])) for p in sorted(placement.documents)]
