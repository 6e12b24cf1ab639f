"""What a share record may grant: never more than its owner can do (docs/decisions.md, "Hardening").

A share is the owner passing on part of their own access, so the grant rendered for the target
is the share *intersected with the owner's template*. That matters where the owner's template
is narrower than a prefix: in a SQL warehouse the owner writes only inside the governed
databases (``users-sql-warehouse/alice/u_alice__*``), so a write share of the warehouse root
becomes read of the root plus write of the governed databases, and a write share of a path
outside them becomes read. The rule is applied when policies are rendered, so it also bounds
records written before it existed. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from minio_manager.governance.layout import Grant
from minio_manager.governance.paths import has_policy_syntax, is_within

TEMPLATE_GLOB = "*"
"""The only wildcard a template grant may hold: a trailing ``*`` after a namespace prefix."""


def _split_glob(key: str) -> tuple[str, str] | None:
    """``R/ns*`` → ``(R, ns)``; a key without a trailing glob → None."""
    if not key.endswith(TEMPLATE_GLOB):
        return None
    root, _, namespace = key[: -len(TEMPLATE_GLOB)].rpartition("/")
    return (root, namespace) if root else None


def _in_glob(key: str, root: str, namespace: str) -> bool:
    """Whether ``key`` lies in ``root/namespace*`` (IAM's ``*`` also matches ``/``)."""
    return key.startswith(f"{root}/{namespace}")


def bounded_write(grant: Grant, owner_writes: Sequence[Grant]) -> list[Grant]:
    """The part of a write share ``grant`` that the owner may write themselves, plus read.

    - inside a plain writable prefix of the owner: the write share as is;
    - inside a governed namespace ``R/ns*`` of the owner: as is;
    - covering such a namespace (``grant.key`` is ``R`` or above it): read of ``grant.key``
      plus write of ``R/ns*`` only;
    - anything else: read of ``grant.key``.
    """
    read = Grant(grant.bucket, grant.key, write=False)
    result: list[Grant] = []
    for own in owner_writes:
        if own.bucket != grant.bucket or not own.write:
            continue
        glob = _split_glob(own.key)
        if glob is None:
            if is_within(grant.key, own.key):
                return [grant]
            if is_within(own.key, grant.key):
                result.append(own)
            continue
        root, namespace = glob
        if _in_glob(grant.key, root, namespace):
            return [grant]
        if is_within(root, grant.key):
            result.append(own)
    return [read, *result]


def effective_share_grants(
    shares: Iterable[tuple[Grant, Sequence[Grant]]],
) -> tuple[list[Grant], list[Grant]]:
    """Grants to render for the shares one principal received, and the grants refused.

    Each item is a share's grant and its owner's template grants. A grant whose key holds
    policy syntax (``*``, ``?``, ``$``, ``{``, ``}``; only a record written before those were
    refused could) is refused outright; a write grant is bounded by ``bounded_write``.
    """
    granted: list[Grant] = []
    refused: list[Grant] = []
    for grant, owner_template in shares:
        if has_policy_syntax(grant.key):
            refused.append(grant)
        elif grant.write:
            granted += bounded_write(grant, owner_template)
        else:
            granted.append(grant)
    return granted, refused
