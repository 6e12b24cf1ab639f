"""Pure rules of issue 8: policy syntax in paths and names, write shares bounded by the owner's
rights, and reading the per-key errors of a DeleteObjects answer."""

from __future__ import annotations

import pytest

from minio_manager.errors import GroupOperationError, PathInvalid, UserOperationError
from minio_manager.governance.layout import Grant, Layout
from minio_manager.governance.naming import validate_group_name, validate_username
from minio_manager.governance.paths import POLICY_SYNTAX_CHARS, parse_share_path
from minio_manager.governance.share_bounds import bounded_write, effective_share_grants
from minio_manager.objectstore.minio import DeleteFailure, parse_delete_failures

HOME = "s3a://cdm-lake/users-general-warehouse/alice"
LAYOUT = Layout()
B = LAYOUT.bucket


# -- 1. policy syntax ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        HOME + "/p/${aws:UserAgent}",
        HOME + "/p/${aws:username}/",
        HOME + "/${s3:prefix}",
        HOME + "/${jwt:sub}/x",
        HOME + "/p/$",
        HOME + "/p/{x}",
        HOME + "/p/a}b",
        HOME + "/p/a{b/*",
        HOME + "/$x/y",
    ],
)
def test_policy_variables_are_refused_in_share_paths(raw: str) -> None:
    with pytest.raises(PathInvalid, match=r"'\$', '\{' and '\}'") as info:
        parse_share_path(raw)
    assert info.value.code == 20015
    assert info.value.status == 400


def test_every_policy_syntax_character_is_refused_in_a_key() -> None:
    for char in sorted(POLICY_SYNTAX_CHARS):
        with pytest.raises(PathInvalid):
            parse_share_path(f"{HOME}/a{char}b")


@pytest.mark.parametrize("char", sorted(POLICY_SYNTAX_CHARS))
def test_names_that_reach_a_policy_cannot_hold_policy_syntax(char: str) -> None:
    """User and group names become policy names, prefixes and resources: the name rules
    already keep every interpreted character out; this pins it."""
    with pytest.raises(UserOperationError):
        validate_username(f"al{char}ice")
    with pytest.raises(UserOperationError):
        validate_username(f"alice{char}")
    with pytest.raises(GroupOperationError):
        validate_group_name(f"team{char}x")
    with pytest.raises(GroupOperationError):
        validate_group_name(f"team{char}x", for_creation=True)


# -- 2. write shares never exceed the owner's rights --------------------------------------------
ALICE = LAYOUT.user_home_grants("alice")
SQL = "users-sql-warehouse/alice"


def test_write_share_of_sql_warehouse_root_writes_only_governed_databases() -> None:
    bounded = bounded_write(Grant(B, SQL, write=True), ALICE)
    assert sorted(bounded) == sorted(
        [Grant(B, SQL, write=False), Grant(B, f"{SQL}/u_alice__*", write=True)]
    )


@pytest.mark.parametrize(
    "key", [f"{SQL}/u_alice__db", f"{SQL}/u_alice__db.db/t1", f"{SQL}/u_alice__"]
)
def test_write_share_inside_a_governed_database_is_kept(key: str) -> None:
    assert bounded_write(Grant(B, key, write=True), ALICE) == [Grant(B, key, write=True)]


@pytest.mark.parametrize(
    "key", [f"{SQL}/tmp", f"{SQL}/u_alice_x", f"{SQL}/u_bob__db", f"{SQL}/x/y"]
)
def test_write_share_outside_the_governed_databases_becomes_read(key: str) -> None:
    assert bounded_write(Grant(B, key, write=True), ALICE) == [Grant(B, key, write=False)]


def test_write_share_in_the_general_home_is_kept() -> None:
    key = "users-general-warehouse/alice/data/x"
    assert bounded_write(Grant(B, key, write=True), ALICE) == [Grant(B, key, write=True)]


def test_write_share_of_another_bucket_or_home_becomes_read() -> None:
    for grant in (
        Grant("other", "users-general-warehouse/alice/x", write=True),
        Grant(B, "users-general-warehouse/bob/x", write=True),
    ):
        assert bounded_write(grant, ALICE) == [Grant(grant.bucket, grant.key, write=False)]


def test_tenant_sql_home_is_bounded_to_the_tenant_namespace() -> None:
    team = LAYOUT.group_grants("team", write=True)
    root = "tenant-sql-warehouse/team"
    assert sorted(bounded_write(Grant(B, root, write=True), team)) == sorted(
        [Grant(B, root, write=False), Grant(B, f"{root}/team_*", write=True)]
    )
    assert bounded_write(Grant(B, f"{root}/team_db", write=True), team) == [
        Grant(B, f"{root}/team_db", write=True)
    ]
    assert bounded_write(Grant(B, f"{root}/other", write=True), team) == [
        Grant(B, f"{root}/other", write=False)
    ]
    # A read-only owner (the {g}ro template) cannot pass on any write.
    team_ro = LAYOUT.group_grants("team", write=False)
    assert bounded_write(Grant(B, f"{root}/team_db", write=True), team_ro) == [
        Grant(B, f"{root}/team_db", write=False)
    ]


def test_effective_grants_refuse_old_records_with_policy_syntax() -> None:
    granted, refused = effective_share_grants(
        [
            (Grant(B, "users-general-warehouse/alice/p/${aws:UserAgent}", write=False), ALICE),
            (Grant(B, "users-general-warehouse/alice/q", write=False), ALICE),
            (Grant(B, SQL, write=True), ALICE),
        ]
    )
    assert refused == [Grant(B, "users-general-warehouse/alice/p/${aws:UserAgent}", write=False)]
    assert sorted(granted) == sorted(
        [
            Grant(B, "users-general-warehouse/alice/q", write=False),
            Grant(B, SQL, write=False),
            Grant(B, f"{SQL}/u_alice__*", write=True),
        ]
    )


# -- 5. DeleteObjects per-key errors ------------------------------------------------------------
def test_delete_answer_with_per_key_errors_is_read() -> None:
    answer = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Deleted><Key>a/ok</Key></Deleted>"
        b"<Error><Key>a/locked</Key><Code>AccessDenied</Code>"
        b"<Message>Access Denied.</Message></Error>"
        b"<Error><Key>a/other</Key><Code>InternalError</Code><Message>x</Message></Error>"
        b"</DeleteResult>"
    )
    assert parse_delete_failures(answer) == [
        DeleteFailure("a/locked", "AccessDenied", "Access Denied."),
        DeleteFailure("a/other", "InternalError", "x"),
    ]


def test_delete_answer_without_errors_is_empty() -> None:
    assert parse_delete_failures(b"") == []
    assert parse_delete_failures(b"<DeleteResult></DeleteResult>") == []
