"""Read share grants back out of policy documents written by the reference service.

The reference kept shares only inside policy text (REFERENCE_STATE.md §5): a share of ``P``
with a principal added ``P`` and ``P/*`` to the principal's policy. Taking such a deployment
over means subtracting what the principal's template grants and turning every remaining path
into a share record. Anything that is not exactly what the reference's builder wrote is
reported instead of guessed (docs/decisions.md, "Taking over a reference deployment", lists the
rules): a guess that widens a grant is a security bug, one that narrows it is an outage.

Pure: no I/O. The importer (``takeover/importer.py``) feeds it what MinIO returns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from minio_manager.errors import ServiceError
from minio_manager.governance.layout import GLOBAL_GROUP, Grant, Layout, read_only_group
from minio_manager.governance.naming import validate_username
from minio_manager.governance.paths import home_owner_of, parse_share_path

USER = "user"
GROUP = "group"
READ = "read"
WRITE = "write"
PUBLIC_GROUPS = frozenset({GLOBAL_GROUP, read_only_group(GLOBAL_GROUP)})

GET_BUCKET_LOCATION = "s3:getbucketlocation"
LIST_BUCKET = "s3:listbucket"
GET_OBJECT = "s3:getobject"
PUT_OBJECT = "s3:putobject"
DELETE_OBJECT = "s3:deleteobject"
OBJECT_ACTIONS = frozenset({GET_OBJECT, PUT_OBJECT, DELETE_OBJECT})
KNOWN_ACTIONS = OBJECT_ACTIONS | {GET_BUCKET_LOCATION, LIST_BUCKET}
ARN_PREFIX = "arn:aws:s3:::"

SHADOW_NAME = re.compile(r"^(?P<base>.+)-shadow-[0-9a-f]{8}$")
"""The reference's transient copy of a policy while it rewrote the original."""

# Kinds of finding. Each is a grant (or part of a document) that is not imported as a share.
UNPARSEABLE = "unparseable"
NOT_ALLOW = "not_allow"
MULTI_ACTION = "multi_action"
UNKNOWN_ACTION = "unknown_action"
CONDITION = "condition"
BUCKET_WIDE = "bucket_wide"
WILDCARD = "wildcard"
OUTSIDE_HOME = "outside_home"
INVALID_PATH = "invalid_path"
DELETE_ONLY = "delete_only"
SELF_GRANT = "self_grant"
LIST_ONLY = "list_only"
PUBLIC_WRITE = "public_write_to_read"


@dataclass(frozen=True, order=True)
class ImportedShare:
    """One share record recovered from policy text."""

    bucket: str
    key: str
    target_type: str
    target_name: str
    level: str
    owner: str

    @property
    def url(self) -> str:
        return f"s3a://{self.bucket}/{self.key}/"


@dataclass(frozen=True, order=True)
class Finding:
    """Something in a document that is not imported as it was.

    ``narrowing`` says whether the principal loses access once its policies are rendered
    from records (a denied statement that is dropped, for instance, loses nothing).
    """

    target_type: str
    target_name: str
    policy: str
    kind: str
    detail: str
    narrowing: bool = True


@dataclass
class Interpretation:
    shares: list[ImportedShare] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def _field(mapping: Mapping[str, Any], name: str) -> Any:
    lowered = name.lower()
    return next((v for k, v in mapping.items() if str(k).lower() == lowered), None)


def _strings(value: Any) -> list[str] | None:
    """A string or a list of strings as a list; None for anything else."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def covers(granted_key: str, key: str) -> bool:
    """Whether a grant on ``granted_key`` covers ``key`` (a template ``*`` matches anything)."""
    if key == granted_key or key.startswith(granted_key + "/"):
        return True
    return granted_key.endswith("*") and key.startswith(granted_key[:-1])


def _covered(template: Iterable[Grant], bucket: str, key: str, write: bool) -> bool:
    return any(
        g.bucket == bucket and covers(g.key, key) and (g.write or not write) for g in template
    )


def _object_path(resource: str) -> tuple[str, str] | None:
    """``arn:aws:s3:::b/P`` or ``…/P/*`` → ``(b, P)``; a bucket ARN → ``(b, "")``."""
    if not resource.startswith(ARN_PREFIX):
        return None
    bucket, _, key = resource[len(ARN_PREFIX) :].partition("/")
    if key.endswith("/*"):
        key = key[:-2]
    return bucket, key


def _list_prefixes(condition: Any) -> list[str] | None:
    """The ``s3:prefix`` values of a ``StringLike`` condition, and nothing else."""
    if not isinstance(condition, Mapping) or len(condition) != 1:
        return None
    operator, body = next(iter(condition.items()))
    if str(operator).lower() != "stringlike" or not isinstance(body, Mapping) or len(body) != 1:
        return None
    name, values = next(iter(body.items()))
    if str(name).lower() != "s3:prefix":
        return None
    return _strings(values)


class _Reader:
    """State of one document while it is read."""

    def __init__(self, target_type: str, target_name: str, policy: str) -> None:
        self.target = (target_type, target_name)
        self.policy = policy
        self.findings: list[Finding] = []
        self.actions: dict[tuple[str, str], set[str]] = {}
        self.listed: set[tuple[str, str]] = set()

    def report(self, kind: str, detail: str, *, narrowing: bool = True) -> None:
        self.findings.append(Finding(*self.target, self.policy, kind, detail, narrowing))

    def statement(self, index: int, statement: Any) -> None:
        where = f"statement {index + 1}"
        if not isinstance(statement, Mapping):
            self.report(UNPARSEABLE, f"{where} is not an object")
            return
        fields = {str(k).lower() for k in statement}
        if fields & {"notaction", "notresource", "principal", "notprincipal"}:
            self.report(UNPARSEABLE, f"{where} uses NotAction/NotResource/Principal")
            return
        effect = str(_field(statement, "Effect") or "")
        actions = _strings(_field(statement, "Action"))
        resources = _strings(_field(statement, "Resource"))
        if actions is None or resources is None:
            self.report(UNPARSEABLE, f"{where} has no readable Action or Resource")
            return
        if effect.lower() != "allow":
            self.report(NOT_ALLOW, f"{where}: Effect {effect!r} dropped", narrowing=False)
            return
        if len(actions) != 1:
            self.report(MULTI_ACTION, f"{where}: actions {sorted(actions)} on {resources}")
            return
        action = actions[0].lower()
        if action not in KNOWN_ACTIONS:
            self.report(UNKNOWN_ACTION, f"{where}: action {actions[0]!r} on {resources}")
            return
        condition = _field(statement, "Condition")
        if action == GET_BUCKET_LOCATION:
            return  # rendered for every bucket a principal has a grant in
        if action == LIST_BUCKET:
            self._listing(where, resources, condition)
            return
        if condition:
            self.report(CONDITION, f"{where}: {actions[0]} with a Condition on {resources}")
            return
        for resource in resources:
            parsed = _object_path(resource)
            if parsed is None or not parsed[0]:
                self.report(UNPARSEABLE, f"{where}: resource {resource!r} is not an S3 ARN")
            elif not parsed[1]:
                self.report(BUCKET_WIDE, f"{where}: {actions[0]} on the whole bucket {parsed[0]}")
            else:
                self.actions.setdefault(parsed, set()).add(action)

    def _listing(self, where: str, resources: list[str], condition: Any) -> None:
        prefixes = _list_prefixes(condition)
        if prefixes is None:
            self.report(WILDCARD, f"{where}: s3:ListBucket on {resources} without a prefix limit")
            return
        for resource in resources:
            parsed = _object_path(resource)
            if parsed is None or parsed[1]:
                self.report(UNPARSEABLE, f"{where}: s3:ListBucket on {resource!r}")
                continue
            for prefix in prefixes:
                key = prefix[:-2] if prefix.endswith("/*") else prefix
                self.listed.add((parsed[0], key))


def interpret_policy(
    document: Any,
    *,
    target_type: str,
    target_name: str,
    policy: str,
    template: Sequence[Grant],
    layout: Layout,
) -> Interpretation:
    """The shares one policy document grants ``target`` beyond ``template``, and findings.

    ``template`` is everything the principal's own templates grant (home + system for a user).
    """
    reader = _Reader(target_type, target_name, policy)
    statements = _field(document, "Statement") if isinstance(document, Mapping) else None
    if isinstance(statements, Mapping):
        statements = [statements]
    if not isinstance(statements, list):
        reader.report(UNPARSEABLE, "the document has no Statement list")
        return Interpretation(findings=reader.findings)
    for index, statement in enumerate(statements):
        reader.statement(index, statement)

    result = Interpretation()
    object_keys: set[tuple[str, str]] = set()
    # The reference granted read on the parent of a wildcard path along with it (§5.2); that
    # read belongs to the wildcard grant and goes with it, unless it is more than a read.
    wildcard_parents = {
        (bucket, key.rsplit("/", 1)[0]): key
        for bucket, key in reader.actions
        if "*" in key and "/" in key and not _covered(template, bucket, key, write=False)
    }
    for (bucket, key), actions in sorted(reader.actions.items()):
        object_keys.add((bucket, key))
        write = bool(actions & {PUT_OBJECT, DELETE_OBJECT})
        if _covered(template, bucket, key, write):
            continue
        wildcard = wildcard_parents.get((bucket, key))
        if wildcard is not None and actions == {GET_OBJECT}:
            reader.report(
                WILDCARD, f"read on {bucket}/{key}, given with the wildcard grant on {wildcard}"
            )
            continue
        share = _share(reader, bucket, key, actions, layout)
        if share is not None:
            result.shares.append(share)
    for bucket, key in sorted(reader.listed):
        if (bucket, key) in object_keys or _covered(template, bucket, key, write=False):
            continue
        if any(b == bucket and k.endswith("*") and k.startswith(key + "/") for b, k in object_keys):
            continue  # the parent listing of a wildcard grant, reported with the grant
        reader.report(LIST_ONLY, f"listing of {bucket}/{key} without read access to it")
    result.findings = reader.findings
    return result


def _share(
    reader: _Reader, bucket: str, key: str, actions: set[str], layout: Layout
) -> ImportedShare | None:
    target_type, target_name = reader.target
    shown = f"{bucket}/{key}"
    if "*" in key or "?" in key:
        reader.report(WILDCARD, f"wildcard grant on {shown} ({_levels(actions)})")
        return None
    if PUT_OBJECT in actions:
        level = WRITE
    elif GET_OBJECT in actions:
        level = READ
    else:
        reader.report(DELETE_ONLY, f"delete without read or write on {shown}")
        return None
    try:
        path = parse_share_path(f"s3a://{bucket}/{key}")
    except ServiceError as exc:
        reader.report(INVALID_PATH, f"{shown}: {exc.message}")
        return None
    owner = home_owner_of(path, layout)
    if owner is not None:
        try:
            validate_username(owner)
        except ServiceError:
            owner = None
    if owner is None:
        reader.report(OUTSIDE_HOME, f"{level} grant on {shown} lies in no user's home")
        return None
    if target_type == USER and owner == target_name:
        reader.report(SELF_GRANT, f"{level} grant on {shown} in the user's own home")
        return None
    if target_type == GROUP and target_name in PUBLIC_GROUPS and level == WRITE:
        reader.report(PUBLIC_WRITE, f"public write on {shown} imported as public read")
        level = READ
    return ImportedShare(path.bucket, path.key, target_type, target_name, level, owner)


def _levels(actions: set[str]) -> str:
    return ", ".join(sorted(a.removeprefix("s3:") for a in actions))


def merge_shares(shares: Iterable[ImportedShare]) -> list[ImportedShare]:
    """One share per (path, target); write wins over read (several documents may name it)."""
    best: dict[tuple[str, str, str, str], ImportedShare] = {}
    for share in shares:
        where = (share.bucket, share.key, share.target_type, share.target_name)
        if where not in best or (share.level == WRITE and best[where].level == READ):
            best[where] = share
    return sorted(best.values())


def shadow_base(name: str) -> str | None:
    """``user-home-policy-bob-shadow-1a2b3c4d`` → ``user-home-policy-bob``; else None."""
    match = SHADOW_NAME.match(name)
    return match.group("base") if match else None
