"""The policy renderer: grants in, IAM policy documents out, and back (SPEC §2).

Policy documents are a projection of the template and share records, so rendering must be
deterministic (re-rendering the same state gives byte-identical JSON) and invertible enough to
list accessible paths and detect drift. MinIO refuses documents over 20 KiB, so a large grant
set is split across several self-contained documents, stored as ``{name}``, ``{name}--2``, …
(which grant goes into which document: ``placement.py``). Pure: no I/O.

Document shape, per bucket (buckets sorted, then keys sorted within each statement)::

    s3:GetBucketLocation  on the bucket
    s3:ListBucket         on the bucket, StringLike s3:prefix [P, P/*, ...]
    s3:GetObject          on bucket/P and bucket/P/* for every grant
    s3:PutObject          on bucket/P and bucket/P/* for write grants   (omitted if none)
    s3:DeleteObject       on bucket/P/* for write grants                (omitted if none)

Each statement is ``{"Effect": "Allow", "Action": [one action], "Resource": [ARNs]}``: the
one-element action list is the form MinIO itself returns.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from json.encoder import encode_basestring_ascii
from typing import Any

from minio_manager.governance.layout import Grant

POLICY_VERSION = "2012-10-17"
MAX_POLICY_BYTES = 20480
"""MinIO's limit on one policy document (20 KiB)."""

ARN_PREFIX = "arn:aws:s3:::"
GET_BUCKET_LOCATION = "s3:GetBucketLocation"
LIST_BUCKET = "s3:ListBucket"
GET_OBJECT = "s3:GetObject"
PUT_OBJECT = "s3:PutObject"
DELETE_OBJECT = "s3:DeleteObject"

_READ_ACTIONS = frozenset({GET_OBJECT.lower(), "s3:*", "*"})
_WRITE_ACTIONS = frozenset({PUT_OBJECT.lower(), "s3:*", "*"})


def document_size(doc: Mapping[str, Any]) -> int:
    """Bytes of ``doc`` in the compact JSON form that must be sent to the store."""
    return len(json.dumps(doc, separators=(",", ":")).encode())


OVERFLOW_SEPARATOR = "--"


def policy_name_at(base_name: str, position: int) -> str:
    """Name of a principal's document at ``position``: ``base``, then ``base--2``, ``base--3``, …

    The separator is doubled because ``-`` is legal in usernames: with a single hyphen the
    second document of ``alice`` (``user-home-policy-alice-2``) would be the home policy of
    user ``alice-2``. Usernames can never hold two consecutive hyphens, so ``--`` cannot clash.
    """
    if position < 1:
        raise ValueError("document positions start at 1")
    return base_name if position == 1 else f"{base_name}{OVERFLOW_SEPARATOR}{position}"


def is_overflow_name(base_name: str, name: str) -> bool:
    """True for ``base--N`` (N ≥ 2): an overflow document of the principal ``base`` names."""
    suffix = name.removeprefix(base_name + OVERFLOW_SEPARATOR)
    return suffix != name and suffix.isdigit() and int(suffix) >= 2


def _check(grant: Grant) -> None:
    if not grant.bucket or not grant.key or grant.key.startswith("/") or grant.key.endswith("/"):
        raise ValueError(f"malformed grant {grant!r}: need a bucket and a key without edge '/'")


def collapse(grants: Iterable[Grant]) -> dict[tuple[str, str], bool]:
    """One entry per (bucket, key); write wins over read."""
    levels: dict[tuple[str, str], bool] = {}
    for grant in grants:
        _check(grant)
        where = (grant.bucket, grant.key)
        levels[where] = levels.get(where, False) or grant.write
    return levels


def _statement(
    action: str, resources: list[str], condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": [action], "Resource": resources}
    if condition is not None:
        statement["Condition"] = condition
    return statement


def _statements_for(by_bucket: dict[str, dict[str, bool]]) -> dict[str, Any]:
    statements: list[dict[str, Any]] = []
    for bucket in sorted(by_bucket):
        keys = sorted(by_bucket[bucket])
        writes = [key for key in keys if by_bucket[bucket][key]]
        objects = f"{ARN_PREFIX}{bucket}/"
        prefixes = [form for key in keys for form in (key, f"{key}/*")]
        statements.append(_statement(GET_BUCKET_LOCATION, [f"{ARN_PREFIX}{bucket}"]))
        statements.append(
            _statement(
                LIST_BUCKET,
                [f"{ARN_PREFIX}{bucket}"],
                {"StringLike": {"s3:prefix": prefixes}},
            )
        )
        statements.append(_statement(GET_OBJECT, [objects + form for form in prefixes]))
        if writes:
            both = [objects + form for key in writes for form in (key, f"{key}/*")]
            statements.append(_statement(PUT_OBJECT, both))
            statements.append(_statement(DELETE_OBJECT, [f"{objects}{key}/*" for key in writes]))
    return {"Version": POLICY_VERSION, "Statement": statements}


EMPTY_DOCUMENT_SIZE = document_size({"Version": POLICY_VERSION, "Statement": []})


def render_document(grants: Iterable[Grant]) -> dict[str, Any]:
    """One document for grants already known to fit (``placement.place`` decides which);
    output order ignores input order, so equal grant sets give byte-identical JSON."""
    by_bucket: dict[str, dict[str, bool]] = {}
    for (bucket, key), write in collapse(grants).items():
        by_bucket.setdefault(bucket, {})[key] = write
    return _statements_for(by_bucket)


def _field(mapping: Mapping[str, Any], name: str) -> Any:
    """Look a field up case-insensitively (``Statement`` or ``statement``)."""
    lowered = name.lower()
    return next((value for key, value in mapping.items() if key.lower() == lowered), None)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return [item for item in value if isinstance(item, str)]
    return []


def _statements(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [item for item in value if isinstance(item, Mapping)]
    return []


def _object_prefix(resource: str) -> tuple[str, str] | None:
    """``arn:aws:s3:::b/P`` or ``…/P/*`` → ``(b, P)``; bucket or whole-bucket ARNs → None."""
    if not resource.startswith(ARN_PREFIX):
        return None
    bucket, slash, key = resource[len(ARN_PREFIX) :].partition("/")
    if key.endswith("/*"):
        key = key[:-2]
    if not bucket or not slash or not key or key == "*":
        return None
    return bucket, key


def grants_from_document(doc: Mapping[str, Any]) -> list[Grant]:
    """Recover the grants of a policy document, sorted: read from GetObject, write from PutObject.

    Accepts what MinIO returns as well as what ``render_policy_documents`` produces: field names
    in any case, Statement/Action/Resource as a single value or a list, extra Condition or
    statements. Non-Allow statements, other actions and bucket-wide resources are ignored, and
    ``s3:*``/``*`` count as read and write.
    """
    levels: dict[tuple[str, str], bool] = {}
    for statement in _statements(_field(doc, "Statement")):
        if str(_field(statement, "Effect")).lower() != "allow":
            continue
        actions = {action.lower() for action in _strings(_field(statement, "Action"))}
        reads, writes = bool(actions & _READ_ACTIONS), bool(actions & _WRITE_ACTIONS)
        if not (reads or writes):
            continue
        for resource in _strings(_field(statement, "Resource")):
            where = _object_prefix(resource)
            if where is not None:
                levels[where] = levels.get(where, False) or writes
    return sorted(Grant(bucket, key, write) for (bucket, key), write in levels.items())


def _sort_key(item: Any) -> str:
    """``json.dumps(item, sort_keys=True)``; for a string that is ``encode_basestring_ascii``
    (what ``dumps`` calls for one), without the encoder's set-up per call."""
    return encode_basestring_ascii(item) if type(item) is str else json.dumps(item, sort_keys=True)


def _canonical_value(value: Any) -> Any:
    """Lists become sorted lists (of canonical items), mappings get lower-case keys.

    Exact types are tested first: the ABC checks cost more than the rest (regenerate compares
    every document, issue 12)."""
    kind = type(value)
    if kind is str:
        return value
    if kind is dict or (kind is not list and isinstance(value, Mapping)):
        return {str(k).lower(): _canonical_value(v) for k, v in value.items()}
    if kind is list or (isinstance(value, Sequence) and not isinstance(value, str)):
        return sorted((_canonical_value(item) for item in value), key=_sort_key)
    return value


def canonical_document(doc: Mapping[str, Any]) -> str:
    """A comparison key for a policy document that ignores order and field-name case.

    MinIO stores actions, resources and condition values as sets and returns them in an
    arbitrary order, so a stored document never equals the rendered one byte for byte; two
    documents granting the same thing have equal canonical forms. A lone string and a
    one-element list are the same to IAM and are made equal here. Empty ``Sid`` fields are
    dropped, since MinIO may add them.
    """
    statements = []
    for statement in _statements(_field(doc, "Statement")):
        shaped: dict[str, Any] = {}
        for key, value in statement.items():
            name = str(key).lower()
            if name == "sid" and not value:
                continue
            shaped[name] = [value] if isinstance(value, str) and name != "effect" else value
        statements.append(_canonical_value(shaped))
    canonical = {
        "version": _field(doc, "Version"),
        "statement": sorted(statements, key=_sort_key),
    }
    return json.dumps(canonical, sort_keys=True, separators=(",", ":"))
