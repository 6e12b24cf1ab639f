"""Name rules for users and groups (SPEC §1).

User and group names become MinIO principals, policy names and storage prefixes, so they are
checked once, here, before anything is created or looked up. Pure: no I/O.
"""

from __future__ import annotations

import re

from minio_manager.errors import GroupOperationError, UserOperationError
from minio_manager.governance.layout import READ_ONLY_SUFFIX

RESERVED_USERNAMES: frozenset[str] = frozenset(
    {
        "admin",
        "root",
        "system",
        "minio",
        "service",
        "backup",
        "guest",
        "anonymous",
        "public",
        "shared",
        "warehouse",
    }
)
"""Lower-case; compared case-insensitively."""

RESERVED_GROUP_NAMES: frozenset[str] = frozenset(
    {
        "admin",
        "root",
        "system",
        "all",
        "everyone",
        "public",
        "default",
        "minio",
        "service",
        "backup",
        "warehouse",
    }
)

USERNAME_MIN_LENGTH = 2
USERNAME_MAX_LENGTH = 64
GROUP_MIN_LENGTH = 2
GROUP_MAX_LENGTH = 62
"""A base group name; its read-only twin ``{g}ro`` is two characters longer (≤ 64)."""

_MAX_SHOWN = 80
_USERNAME_CHARS = re.compile(r"[A-Za-z0-9._-]+")
_ALNUM = re.compile(r"[A-Za-z0-9]")
_DOUBLE_SEPARATOR = re.compile(r"[._-]{2}")
_GROUP_PATTERN = re.compile(r"[a-z][a-z0-9]+")


def _shown(name: str) -> str:
    """Quote a name for an error message, cut short so a huge input cannot flood the reply."""
    if len(name) > _MAX_SHOWN:
        return repr(name[:_MAX_SHOWN]) + "..."
    return repr(name)


def validate_username(name: str) -> str:
    """Return ``name`` if it is an acceptable user name, else raise ``UserOperationError``."""

    def fail(rule: str) -> UserOperationError:
        return UserOperationError(f"Invalid username {_shown(name)}: {rule}")

    if not USERNAME_MIN_LENGTH <= len(name) <= USERNAME_MAX_LENGTH:
        raise fail(f"must be {USERNAME_MIN_LENGTH}-{USERNAME_MAX_LENGTH} characters long")
    if not _USERNAME_CHARS.fullmatch(name):
        raise fail("only letters, digits, '.', '_' and '-' are allowed")
    if not (_ALNUM.fullmatch(name[0]) and _ALNUM.fullmatch(name[-1])):
        raise fail("must start and end with a letter or digit")
    if _DOUBLE_SEPARATOR.search(name):
        raise fail("must not contain two consecutive '.', '_' or '-' characters")
    if name.lower() in RESERVED_USERNAMES:
        raise fail("this name is reserved")
    return name


def is_read_only_group(name: str) -> bool:
    """True for the ``{g}ro`` form; creation refuses ``ro`` endings, so the suffix is reliable."""
    return len(name) > len(READ_ONLY_SUFFIX) and name.endswith(READ_ONLY_SUFFIX)


def base_group_of(name: str) -> str:
    """The read-write group a name belongs to: ``{g}ro`` → ``g``, ``g`` → ``g``."""
    return name[: -len(READ_ONLY_SUFFIX)] if is_read_only_group(name) else name


def validate_group_name(name: str, *, for_creation: bool = False) -> str:
    """Return ``name`` if it is an acceptable group name, else raise ``GroupOperationError``.

    With ``for_creation`` the name must be a base group (not ending in ``ro``). Otherwise a
    read-only twin ``{g}ro`` is also accepted, including the 63-64 character twins of the
    longest base names, provided its base ``g`` is itself a valid, unreserved base name.
    """

    def fail(rule: str) -> GroupOperationError:
        return GroupOperationError(f"Invalid group name {_shown(name)}: {rule}")

    read_only = not for_creation and name.endswith(READ_ONLY_SUFFIX)
    max_length = GROUP_MAX_LENGTH + len(READ_ONLY_SUFFIX) if read_only else GROUP_MAX_LENGTH
    if not GROUP_MIN_LENGTH <= len(name) <= max_length:
        raise fail(f"must be {GROUP_MIN_LENGTH}-{max_length} characters long")
    if not _GROUP_PATTERN.fullmatch(name):
        raise fail("must start with a lower-case letter followed by lower-case letters or digits")
    if name in RESERVED_GROUP_NAMES:
        raise fail("this name is reserved")
    if for_creation and name.endswith(READ_ONLY_SUFFIX):
        raise fail(f"names ending in '{READ_ONLY_SUFFIX}' are reserved for read-only groups")
    if read_only:
        base = name[: -len(READ_ONLY_SUFFIX)]
        if len(base) < GROUP_MIN_LENGTH or not _GROUP_PATTERN.fullmatch(base):
            raise fail("is not the read-only form of a valid group name")
        if base in RESERVED_GROUP_NAMES:
            raise fail("is the read-only form of a reserved name")
    return name
