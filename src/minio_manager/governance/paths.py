"""Share paths: parsing, normalisation and containment (SPEC §1).

A share path ends up verbatim in IAM policy resources and ``s3:prefix`` conditions, where
``*``, ``?``, ``..`` or an encoded separator would widen the grant beyond what the owner meant.
So every path is parsed here into a canonical ``SharePath`` before it is stored or rendered.
Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from minio_manager.errors import BucketInvalid, PathInvalid
from minio_manager.governance.layout import Grant, Layout

SCHEMES = ("s3a://", "s3://")
MAX_KEY_LENGTH = 1024
BUCKET_MIN_LENGTH = 3
BUCKET_MAX_LENGTH = 63

_MAX_SHOWN = 80
_BUCKET_CHARS = re.compile(r"[a-z0-9.-]+")
_ALNUM = re.compile(r"[a-z0-9]")
_IPV4_LIKE = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_ENCODED_TRAVERSAL = ("%2e", "%2f", "%5c", "%25")
POLICY_SYNTAX_CHARS = frozenset("*?${}")
"""Characters the store interprets inside a policy resource or ``s3:prefix`` condition value:
``*``/``?`` are wildcards and ``${…}`` is a policy variable (``${aws:username}``,
``${aws:UserAgent}``, ``${s3:prefix}``, ``${jwt:sub}`` …) that MinIO expands *per request*, from
values the caller may choose. A key holding any of them would grant more than it names."""


def _shown(text: str) -> str:
    """Quote input for an error message, cut short so a huge input cannot flood the reply."""
    if len(text) > _MAX_SHOWN:
        return repr(text[:_MAX_SHOWN]) + "..."
    return repr(text)


@dataclass(frozen=True, order=True)
class SharePath:
    """A canonical share target: ``key`` has no trailing ``/`` or ``/*`` and no wildcards."""

    bucket: str
    key: str

    @property
    def url(self) -> str:
        """The form the API returns; the trailing slash marks it as a prefix."""
        return f"s3a://{self.bucket}/{self.key}/"

    def grant(self, write: bool) -> Grant:
        return Grant(self.bucket, self.key, write=write)


def validate_bucket_name(name: str) -> str:
    """Return ``name`` if S3 and MinIO accept it as a bucket name, else raise ``BucketInvalid``."""

    def fail(rule: str) -> BucketInvalid:
        return BucketInvalid(f"Invalid bucket name {_shown(name)}: {rule}")

    if not BUCKET_MIN_LENGTH <= len(name) <= BUCKET_MAX_LENGTH:
        raise fail(f"must be {BUCKET_MIN_LENGTH}-{BUCKET_MAX_LENGTH} characters long")
    if not _BUCKET_CHARS.fullmatch(name):
        raise fail("only lower-case letters, digits, '.' and '-' are allowed")
    if not (_ALNUM.fullmatch(name[0]) and _ALNUM.fullmatch(name[-1])):
        raise fail("must start and end with a lower-case letter or digit")
    if ".." in name or ".-" in name or "-." in name:
        raise fail("must not contain '..', '.-' or '-.'")
    if _IPV4_LIKE.fullmatch(name):
        raise fail("must not be formatted as an IP address")
    return name


def parse_share_path(raw: str) -> SharePath:
    """Parse ``s3://`` / ``s3a://`` ``bucket/key`` into its canonical ``SharePath``.

    ``…/exp1``, ``…/exp1/`` and ``…/exp1/*`` give the same result. Any rule broken raises
    ``PathInvalid`` naming the rule, except a bad bucket name, which raises ``BucketInvalid``.
    """

    def fail(rule: str) -> PathInvalid:
        return PathInvalid(f"Invalid path {_shown(raw)}: {rule}")

    if raw != raw.strip():
        raise fail("leading or trailing whitespace is not allowed")
    if not raw.isascii():
        raise fail("only ASCII characters are allowed")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in raw):
        raise fail("control characters are not allowed")
    scheme = next((s for s in SCHEMES if raw.lower().startswith(s)), None)
    if scheme is None:
        raise fail("must start with s3:// or s3a://")
    bucket, _, key = raw[len(scheme) :].partition("/")
    validate_bucket_name(bucket)
    # Work on "/key" so the bucket separator takes part in the "//" and "/*" rules.
    rooted = "/" + key
    if "//" in rooted:
        raise fail("empty path segments ('//') are not allowed")
    if "\\" in key:
        raise fail("backslashes are not allowed")
    lowered = key.lower()
    if any(code in lowered for code in _ENCODED_TRAVERSAL):
        raise fail("URL-encoded '.', '/', '\\' or '%' (%2e, %2f, %5c, %25) are not allowed")
    if rooted.endswith("/*"):
        rooted = rooted[:-2]
    elif rooted.endswith("/"):
        rooted = rooted[:-1]
    key = rooted[1:]
    if not key:
        raise fail("the key must not be empty (a whole bucket cannot be shared)")
    if "*" in key or "?" in key:
        raise fail("wildcards ('*', '?') are not allowed, except a single trailing '/*'")
    if any(char in POLICY_SYNTAX_CHARS for char in key):
        raise fail(
            "'$', '{' and '}' are not allowed (the object store reads '${...}' in a policy as a"
            " variable filled in from each request)"
        )
    if len(key) > MAX_KEY_LENGTH:
        raise fail(f"the key must be at most {MAX_KEY_LENGTH} characters")
    if any(segment in (".", "..") for segment in key.split("/")):
        raise fail("'.' and '..' path segments are not allowed")
    return SharePath(bucket, key)


def has_policy_syntax(key: str) -> bool:
    """Whether ``key`` holds a character the store would interpret (see ``POLICY_SYNTAX_CHARS``).

    The renderer drops share grants for which this holds, so a record written before the rule
    existed can never reach a policy.
    """
    return not POLICY_SYNTAX_CHARS.isdisjoint(key)


def is_within(key: str, prefix: str) -> bool:
    """Whether ``key`` is ``prefix`` or below it; ``alicex`` is not within ``alice``."""
    return key == prefix or key.startswith(prefix + "/")


def owner_home_of(path: SharePath, layout: Layout, user: str) -> bool:
    """Whether ``path`` lies in one of ``user``'s home prefixes (the root included)."""
    return path.bucket == layout.bucket and any(
        is_within(path.key, home) for home in layout.user_home_keys(user)
    )


def home_owner_of(path: SharePath, layout: Layout) -> str | None:
    """The user whose home prefix holds ``path``, if any (``…/users-general-warehouse/u/…``).

    Used where the caller is not the owner (an admin asking who can read a path), so the
    owner can still be named in the answer.
    """
    if path.bucket != layout.bucket:
        return None
    for prefix in (layout.users_general_prefix, layout.users_sql_prefix):
        rest = path.key.removeprefix(prefix + "/")
        if rest != path.key and rest:
            return rest.split("/", 1)[0]
    return None


def self_and_ancestors(key: str) -> list[str]:
    """``a/b/c`` → ``[a, a/b, a/b/c]``: every key whose grant covers ``key``."""
    parts = key.split("/")
    return ["/".join(parts[: n + 1]) for n in range(len(parts))]
