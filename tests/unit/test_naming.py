"""User and group name rules of SPEC §1."""

from __future__ import annotations

import pytest

from minio_manager.errors import GroupOperationError, UserOperationError
from minio_manager.governance.naming import (
    RESERVED_GROUP_NAMES,
    RESERVED_USERNAMES,
    base_group_of,
    is_read_only_group,
    validate_group_name,
    validate_username,
)

# -- usernames ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "a1",
        "42",
        "alice",
        "Alice",
        "ALICE",
        "alice.smith",
        "alice_smith",
        "alice-smith",
        "a.b_c-d",
        "a" * 64,
        "x" + "y" * 62 + "z",
        "admin1",
        "myroot",
        "public-data",
    ],
)
def test_valid_usernames(name: str) -> None:
    assert validate_username(name) == name


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("", "2-64"),
        ("a", "2-64"),
        ("a" * 65, "2-64"),
        ("a" * 1000, "2-64"),
        ("al ice", "only letters"),
        ("alice@x", "only letters"),
        ("alice/x", "only letters"),
        ("alicé", "only letters"),
        ("alice\n", "only letters"),
        ("al*ce", "only letters"),
        (".alice", "start and end"),
        ("_alice", "start and end"),
        ("-alice", "start and end"),
        ("alice.", "start and end"),
        ("alice_", "start and end"),
        ("alice-", "start and end"),
        ("a..b", "consecutive"),
        ("a._b", "consecutive"),
        ("a-_b", "consecutive"),
        ("a__b", "consecutive"),
        ("a--b", "consecutive"),
        ("a-.b", "consecutive"),
    ],
)
def test_invalid_usernames(name: str, rule: str) -> None:
    with pytest.raises(UserOperationError, match=rule) as caught:
        validate_username(name)
    assert caught.value.code == 20030


@pytest.mark.parametrize(
    "word",
    [
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
    ],
)
def test_reserved_usernames_case_insensitive(word: str) -> None:
    assert word in RESERVED_USERNAMES
    for form in (word, word.upper(), word.capitalize()):
        with pytest.raises(UserOperationError, match="reserved"):
            validate_username(form)


def test_reserved_username_list_is_exactly_the_spec() -> None:
    assert len(RESERVED_USERNAMES) == 11


def test_long_username_is_truncated_in_message() -> None:
    with pytest.raises(UserOperationError) as caught:
        validate_username("b" * 5000)
    assert len(caught.value.message) < 200
    assert "..." in caught.value.message


# -- groups ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["ab", "a1", "kbase", "team42", "globalusers", "g" * 62, "administrators"],
)
def test_valid_group_names(name: str) -> None:
    assert validate_group_name(name) == name
    assert validate_group_name(name, for_creation=True) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a",
        "g" * 63,
        "1team",
        "Team",
        "teAm",
        "team-a",
        "team_a",
        "team.a",
        "team a",
        "tëam",
        "team\n",
        "_team",
    ],
)
def test_invalid_group_names(name: str) -> None:
    for for_creation in (False, True):
        with pytest.raises(GroupOperationError) as caught:
            validate_group_name(name, for_creation=for_creation)
        assert caught.value.code == 20040


@pytest.mark.parametrize(
    "word",
    [
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
    ],
)
def test_reserved_group_names(word: str) -> None:
    assert word in RESERVED_GROUP_NAMES
    for for_creation in (False, True):
        with pytest.raises(GroupOperationError, match="reserved"):
            validate_group_name(word, for_creation=for_creation)
    # The read-only twin of a reserved name is refused too.
    with pytest.raises(GroupOperationError, match="reserved"):
        validate_group_name(word + "ro")


def test_reserved_group_list_is_exactly_the_spec() -> None:
    assert len(RESERVED_GROUP_NAMES) == 11


@pytest.mark.parametrize("name", ["teamro", "globalusersro", "micro", "abro"])
def test_ro_suffix_refused_for_creation_but_accepted_for_lookup(name: str) -> None:
    with pytest.raises(GroupOperationError, match="read-only"):
        validate_group_name(name, for_creation=True)
    assert validate_group_name(name) == name


def test_read_only_twin_of_longest_base_name_is_valid() -> None:
    base = "g" * 62
    assert validate_group_name(base + "ro") == base + "ro"
    with pytest.raises(GroupOperationError):
        validate_group_name("g" * 63 + "ro")
    with pytest.raises(GroupOperationError):
        validate_group_name("g" * 63 + "ro", for_creation=True)


@pytest.mark.parametrize("name", ["ro", "aro", "1ro"])
def test_ro_form_of_an_invalid_base_is_refused(name: str) -> None:
    with pytest.raises(GroupOperationError):
        validate_group_name(name)


@pytest.mark.parametrize(
    ("name", "read_only", "base"),
    [
        ("team", False, "team"),
        ("teamro", True, "team"),
        ("globalusersro", True, "globalusers"),
        ("ro", False, "ro"),
        ("kbasero", True, "kbase"),
    ],
)
def test_read_only_helpers(name: str, read_only: bool, base: str) -> None:
    assert is_read_only_group(name) is read_only
    assert base_group_of(name) == base
