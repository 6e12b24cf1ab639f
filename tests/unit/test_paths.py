"""Share-path parsing, normalisation and containment (SPEC §1)."""

from __future__ import annotations

import pytest

from minio_manager.errors import BucketInvalid, PathInvalid, ServiceError
from minio_manager.governance.layout import Grant, Layout
from minio_manager.governance.paths import (
    SharePath,
    is_within,
    owner_home_of,
    parse_share_path,
    validate_bucket_name,
)

HOME = "s3a://cdm-lake/users-general-warehouse/alice"


@pytest.mark.parametrize(
    ("raw", "error", "rule"),
    [
        # whitespace, encoding and control characters
        (" " + HOME + "/x", PathInvalid, "whitespace"),
        (HOME + "/x ", PathInvalid, "whitespace"),
        (HOME + "/x\n", PathInvalid, "whitespace"),
        ("\t" + HOME, PathInvalid, "whitespace"),
        (HOME + "/caf\u00e9", PathInvalid, "ASCII"),
        (HOME + "/\u2215etc", PathInvalid, "ASCII"),
        (HOME + "/a\x00b", PathInvalid, "control"),
        (HOME + "/a\x1fb", PathInvalid, "control"),
        (HOME + "/a\x7fb", PathInvalid, "control"),
        (HOME + "/a\x1b[0m", PathInvalid, "control"),
        # scheme
        ("cdm-lake/users-general-warehouse/alice", PathInvalid, "s3://"),
        ("s3n://cdm-lake/users-general-warehouse/alice", PathInvalid, "s3://"),
        ("https://cdm-lake/users-general-warehouse/alice", PathInvalid, "s3://"),
        ("s3a:/cdm-lake/users-general-warehouse/alice", PathInvalid, "s3://"),
        ("", PathInvalid, "s3://"),
        # empty key
        ("s3a://cdm-lake", PathInvalid, "empty"),
        ("s3a://cdm-lake/", PathInvalid, "empty"),
        ("s3a://cdm-lake/*", PathInvalid, "empty"),
        # empty segments
        ("s3a://cdm-lake//users", PathInvalid, "//"),
        ("s3a://cdm-lake/users//alice", PathInvalid, "//"),
        (HOME + "//", PathInvalid, "//"),
        (HOME + "//*", PathInvalid, "//"),
        # dot segments
        (HOME + "/../bob", PathInvalid, "'\\.\\.'"),
        (HOME + "/..", PathInvalid, "'\\.\\.'"),
        ("s3a://cdm-lake/../x", PathInvalid, "'\\.\\.'"),
        (HOME + "/./x", PathInvalid, "'\\.'"),
        (HOME + "/.", PathInvalid, "'\\.'"),
        (HOME + "/x/./", PathInvalid, "'\\.'"),
        # URL-encoded traversal, any case, and double encoding
        (HOME + "/%2e%2e/bob", PathInvalid, "URL-encoded"),
        (HOME + "/%2E%2E/bob", PathInvalid, "URL-encoded"),
        (HOME + "/..%2fbob", PathInvalid, "URL-encoded"),
        (HOME + "%2F..%2Fbob", PathInvalid, "URL-encoded"),
        (HOME + "/..%5cbob", PathInvalid, "URL-encoded"),
        (HOME + "/..%5Cbob", PathInvalid, "URL-encoded"),
        (HOME + "/%252e%252e/bob", PathInvalid, "URL-encoded"),
        (HOME + "/x%25", PathInvalid, "URL-encoded"),
        # backslashes
        (HOME + "\\..\\bob", PathInvalid, "backslash"),
        (HOME + "/a\\b", PathInvalid, "backslash"),
        # wildcards
        ("s3a://cdm-lake/?", PathInvalid, "wildcard"),
        ("s3a://cdm-lake/users-general-warehouse/al*", PathInvalid, "wildcard"),
        (HOME + "*", PathInvalid, "wildcard"),
        (HOME + "/x?", PathInvalid, "wildcard"),
        (HOME + "/?", PathInvalid, "wildcard"),
        (HOME + "/**", PathInvalid, "wildcard"),
        (HOME + "/*/", PathInvalid, "wildcard"),
        (HOME + "/*/x", PathInvalid, "wildcard"),
        (HOME + "/x/*/*", PathInvalid, "wildcard"),
        ("s3a://cdm-lake/**", PathInvalid, "wildcard"),
        # key length (normalised key over 1024 characters)
        ("s3a://cdm-lake/" + "k" * 1025, PathInvalid, "1024"),
        ("s3a://cdm-lake/" + "k/" * 600, PathInvalid, "1024"),
        # bucket names
        ("s3a:///users", BucketInvalid, "3-63"),
        ("s3a://ab/users", BucketInvalid, "3-63"),
        ("s3a://" + "b" * 64 + "/users", BucketInvalid, "3-63"),
        ("s3a://CDM-lake/users", BucketInvalid, "lower-case"),
        ("s3a://cdm_lake/users", BucketInvalid, "lower-case"),
        ("s3a://cdm%2elake/users", BucketInvalid, "lower-case"),
        ("s3a://cdm*/users", BucketInvalid, "lower-case"),
        ("s3a://-cdm-lake/users", BucketInvalid, "start and end"),
        ("s3a://cdm-lake-/users", BucketInvalid, "start and end"),
        ("s3a://.cdm/users", BucketInvalid, "start and end"),
        ("s3a://cdm..lake/users", BucketInvalid, "'\\.\\.'"),
        ("s3a://cdm.-lake/users", BucketInvalid, "'\\.\\.'"),
        ("s3a://192.168.1.10/users", BucketInvalid, "IP address"),
        ("s3a://..//users", BucketInvalid, "3-63"),
    ],
)
def test_malformed_paths(raw: str, error: type[ServiceError], rule: str) -> None:
    with pytest.raises(error, match=rule) as caught:
        parse_share_path(raw)
    assert type(caught.value) is error
    assert caught.value.code == (20015 if error is PathInvalid else 30020)


def test_error_message_is_short_for_huge_input() -> None:
    with pytest.raises(PathInvalid) as caught:
        parse_share_path("s3a://cdm-lake/" + "k" * 100_000)
    assert len(caught.value.message) < 300


@pytest.mark.parametrize(
    "raw",
    [
        HOME + "/exp1",
        HOME + "/exp1/",
        HOME + "/exp1/*",
        "s3://cdm-lake/users-general-warehouse/alice/exp1",
        "s3://cdm-lake/users-general-warehouse/alice/exp1/",
        "s3://cdm-lake/users-general-warehouse/alice/exp1/*",
        "S3A://cdm-lake/users-general-warehouse/alice/exp1",
    ],
)
def test_equivalent_forms_normalise_to_one_path(raw: str) -> None:
    path = parse_share_path(raw)
    assert path == SharePath("cdm-lake", "users-general-warehouse/alice/exp1")
    assert path.url == "s3a://cdm-lake/users-general-warehouse/alice/exp1/"


@pytest.mark.parametrize(
    ("raw", "bucket", "key"),
    [
        ("s3a://cdm-lake/a", "cdm-lake", "a"),
        ("s3a://cdm-lake/a/b c/d", "cdm-lake", "a/b c/d"),
        ("s3a://cdm-lake/a/.hidden/...", "cdm-lake", "a/.hidden/..."),
        ("s3a://cdm-lake/a/x..y/", "cdm-lake", "a/x..y"),
        ("s3a://cdm-lake/a/100%", "cdm-lake", "a/100%"),
        ("s3a://my.bucket-1/k", "my.bucket-1", "k"),
        ("s3a://abc/k", "abc", "k"),
        ("s3a://" + "b" * 63 + "/k", "b" * 63, "k"),
        ("s3a://cdm-lake/" + "k" * 1024, "cdm-lake", "k" * 1024),
        ("s3a://cdm-lake/" + "k" * 1024 + "/*", "cdm-lake", "k" * 1024),
    ],
)
def test_valid_paths(raw: str, bucket: str, key: str) -> None:
    assert parse_share_path(raw) == SharePath(bucket, key)


def test_validate_bucket_name_accepts_the_default_buckets() -> None:
    for bucket in ("cdm-lake", "cdm-spark-job-logs", "cts"):
        assert validate_bucket_name(bucket) == bucket


def test_share_path_grant() -> None:
    path = SharePath("cdm-lake", "users-general-warehouse/alice/exp1")
    assert path.grant(write=True) == Grant("cdm-lake", "users-general-warehouse/alice/exp1", True)
    assert path.grant(write=False).write is False


@pytest.mark.parametrize(
    ("key", "prefix", "expected"),
    [
        ("users-general-warehouse/alice", "users-general-warehouse/alice", True),
        ("users-general-warehouse/alice/x", "users-general-warehouse/alice", True),
        ("users-general-warehouse/alice/x/y", "users-general-warehouse/alice", True),
        ("users-general-warehouse/alicex", "users-general-warehouse/alice", False),
        ("users-general-warehouse/alicex/y", "users-general-warehouse/alice", False),
        ("users-general-warehouse/alic", "users-general-warehouse/alice", False),
        ("users-general-warehouse", "users-general-warehouse/alice", False),
        ("other/alice", "users-general-warehouse/alice", False),
    ],
)
def test_is_within(key: str, prefix: str, expected: bool) -> None:
    assert is_within(key, prefix) is expected


LAYOUT = Layout()


@pytest.mark.parametrize(
    ("raw", "user", "expected"),
    [
        ("s3a://cdm-lake/users-general-warehouse/alice", "alice", True),
        ("s3a://cdm-lake/users-general-warehouse/alice/", "alice", True),
        ("s3a://cdm-lake/users-general-warehouse/alice/exp1/data", "alice", True),
        ("s3a://cdm-lake/users-sql-warehouse/alice", "alice", True),
        ("s3a://cdm-lake/users-sql-warehouse/alice/u_alice__db.db", "alice", True),
        ("s3a://cdm-lake/users-general-warehouse/alicex/exp1", "alice", False),
        ("s3a://cdm-lake/users-sql-warehouse/alicex", "alice", False),
        ("s3a://cdm-lake/users-general-warehouse/bob/exp1", "alice", False),
        ("s3a://cdm-lake/users-general-warehouse/alice/exp1", "bob", False),
        ("s3a://cdm-lake/users-general-warehouse", "alice", False),
        ("s3a://cdm-lake/tenant-general-warehouse/alice", "alice", False),
        ("s3a://other-bucket/users-general-warehouse/alice/x", "alice", False),
        ("s3a://cdm-spark-job-logs/spark-job-logs/alice", "alice", False),
    ],
)
def test_owner_home_of(raw: str, user: str, expected: bool) -> None:
    assert owner_home_of(parse_share_path(raw), LAYOUT, user) is expected


def test_owner_home_of_follows_a_custom_layout() -> None:
    layout = Layout(bucket="lake2", users_general_prefix="homes")
    assert owner_home_of(SharePath("lake2", "homes/alice/x"), layout, "alice")
    assert not owner_home_of(SharePath("cdm-lake", "homes/alice/x"), layout, "alice")
    assert not owner_home_of(SharePath("lake2", "users-general-warehouse/alice/x"), layout, "alice")
