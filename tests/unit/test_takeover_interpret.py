"""Shares recovered from reference policy text: templates subtracted, the rest reported."""

from __future__ import annotations

from typing import Any

from minio_manager.governance.layout import Layout
from minio_manager.takeover.interpret import (
    BUCKET_WIDE,
    CONDITION,
    DELETE_ONLY,
    INVALID_PATH,
    LIST_ONLY,
    MULTI_ACTION,
    NOT_ALLOW,
    OUTSIDE_HOME,
    PUBLIC_WRITE,
    SELF_GRANT,
    UNKNOWN_ACTION,
    UNPARSEABLE,
    WILDCARD,
    ImportedShare,
    Interpretation,
    interpret_policy,
    merge_shares,
    shadow_base,
)
from tests.support.reference import group_policy, user_home, user_system

LAYOUT = Layout()
B = "cdm-lake"


def _user(doc: dict[str, Any], user: str = "bob") -> Interpretation:
    template = [*LAYOUT.user_home_grants(user), *LAYOUT.user_system_grants(user)]
    return interpret_policy(
        doc, target_type="user", target_name=user, policy=f"user-home-policy-{user}",
        template=template, layout=LAYOUT,
    )  # fmt: skip


def _group(doc: dict[str, Any], group: str) -> Interpretation:
    ro = group.endswith("ro")
    base = group[:-2] if ro else group
    return interpret_policy(
        doc, target_type="group", target_name=group, policy=f"group-policy-{group}",
        template=LAYOUT.group_grants(base, write=not ro), layout=LAYOUT,
    )  # fmt: skip


def _kinds(result: Interpretation) -> list[str]:
    return [f.kind for f in result.findings]


def test_templates_alone_give_nothing() -> None:
    for doc in (user_home("bob").document, user_system("bob").document):
        result = _user(doc)
        assert result.shares == [] and result.findings == []
    for name, ro in (("kbase", False), ("kbasero", True)):
        result = _group(group_policy("kbase", read_only=ro).document, name)
        assert result.shares == [] and result.findings == []


def test_shares_with_levels_and_owner_from_path() -> None:
    doc = (
        user_home("bob")
        .grant(B, "users-general-warehouse/alice/data/exp1", "read")
        .grant(B, "users-sql-warehouse/alice/u_alice__db1", "write")
        .document
    )
    result = _user(doc)
    assert result.findings == []
    assert result.shares == [
        ImportedShare(B, "users-general-warehouse/alice/data/exp1", "user", "bob", "read", "alice"),
        ImportedShare(B, "users-sql-warehouse/alice/u_alice__db1", "user", "bob", "write", "alice"),
    ]


def test_public_write_becomes_read_and_is_reported() -> None:
    doc = group_policy("globalusers").grant(B, "users-general-warehouse/al/pub", "write").document
    result = _group(doc, "globalusers")
    assert [s.level for s in result.shares] == ["read"]
    assert _kinds(result) == [PUBLIC_WRITE]
    assert result.findings[0].narrowing


def test_wildcard_outside_home_and_self_grants_are_reported_not_imported() -> None:
    doc = (
        user_home("bob")
        .grant(B, "users-general-warehouse/alice/exp*", "read")
        .grant(B, "tenant-general-warehouse/kbase/projects", "write")
        .grant("other-bucket", "data", "read")
        .grant(B, "users-sql-warehouse/bob/scratch", "write")
        .document
    )
    result = _user(doc)
    assert result.shares == []
    assert sorted(_kinds(result)) == sorted(
        [WILDCARD, WILDCARD, OUTSIDE_HOME, OUTSIDE_HOME, SELF_GRANT]
    )
    assert all(f.narrowing for f in result.findings)


def test_hand_edits_are_reported() -> None:
    doc = (
        user_home("bob")
        .raw({"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
              "Resource": [f"arn:aws:s3:::{B}/users-general-warehouse/alice/x/*"]})
        .raw({"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": ["arn:aws:s3:::*"]})
        .raw({"Effect": "Deny", "Action": "s3:GetObject", "Resource": [f"arn:aws:s3:::{B}/x"]})
        .raw({"Effect": "Allow", "Action": "s3:GetObject", "Resource": [f"arn:aws:s3:::{B}"]})
        .raw({"Effect": "Allow", "Action": "s3:GetObject", "Resource": ["nonsense"]})
        .raw({"Effect": "Allow", "Action": "s3:GetObject",
              "Resource": [f"arn:aws:s3:::{B}/users-general-warehouse/alice/c"],
              "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}})
        .raw({"Effect": "Allow", "Action": "s3:DeleteObject",
              "Resource": [f"arn:aws:s3:::{B}/users-general-warehouse/alice/d/*"]})
        .raw({"Effect": "Allow", "Action": "s3:GetObject",
              "Resource": [f"arn:aws:s3:::{B}/users-general-warehouse/alice/a b/../c"]})
        .document
    )  # fmt: skip
    result = _user(doc)
    assert result.shares == []
    assert sorted(_kinds(result)) == sorted(
        [MULTI_ACTION, UNKNOWN_ACTION, NOT_ALLOW, BUCKET_WIDE, UNPARSEABLE, CONDITION,
         DELETE_ONLY, INVALID_PATH]
    )  # fmt: skip
    assert [f.narrowing for f in result.findings if f.kind == NOT_ALLOW] == [False]


def test_unparseable_documents() -> None:
    assert _kinds(_user({"Version": "2012-10-17"})) == [UNPARSEABLE]
    assert _kinds(_user(["not", "a", "document"])) == [UNPARSEABLE]  # type: ignore[arg-type]


def test_listing_without_read_is_reported() -> None:
    doc = user_home("bob").document
    doc["Statement"][1]["Condition"]["StringLike"]["s3:prefix"].append(
        "users-general-warehouse/alice/secret"
    )
    result = _user(doc)
    assert _kinds(result) == [LIST_ONLY]


def test_minio_normalised_form_is_read_too() -> None:
    """MinIO returns actions and resources as lists in any order."""
    doc = user_home("bob").grant(B, "users-general-warehouse/alice/x", "write").document
    for st in doc["Statement"]:
        st["Action"] = [st["Action"]]
        st["Resource"] = list(reversed(st["Resource"]))
    result = _user(doc)
    assert [(s.key, s.level) for s in result.shares] == [
        ("users-general-warehouse/alice/x", "write")
    ]


def test_merge_and_shadow_names() -> None:
    read = ImportedShare(B, "k", "user", "bob", "read", "alice")
    write = ImportedShare(B, "k", "user", "bob", "write", "alice")
    assert merge_shares([read, write, read]) == [write]
    assert shadow_base("user-home-policy-bob-shadow-0a1b2c3d") == "user-home-policy-bob"
    assert shadow_base("user-home-policy-bob-shadow-xyz") is None
