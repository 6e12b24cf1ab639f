"""The policy renderer of SPEC §2: shape, determinism, splitting and the inverse parse."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from minio_manager.errors import PolicyOperationError
from minio_manager.governance import policies
from minio_manager.governance.layout import Grant, Layout
from minio_manager.governance.placement import render_policy_documents
from minio_manager.governance.policies import (
    document_size,
    grants_from_document,
    is_overflow_name,
    policy_name_at,
)

LAYOUT = Layout()
ALICE_HOME = LAYOUT.user_home_grants("alice")

ALICE_HOME_DOCUMENT: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation"],
            "Resource": ["arn:aws:s3:::cdm-lake"],
        },
        {
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": ["arn:aws:s3:::cdm-lake"],
            "Condition": {
                "StringLike": {
                    "s3:prefix": [
                        "users-general-warehouse/alice",
                        "users-general-warehouse/alice/*",
                        "users-sql-warehouse/alice",
                        "users-sql-warehouse/alice/*",
                        "users-sql-warehouse/alice/u_alice__*",
                        "users-sql-warehouse/alice/u_alice__*/*",
                    ]
                }
            },
        },
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [
                "arn:aws:s3:::cdm-lake/users-general-warehouse/alice",
                "arn:aws:s3:::cdm-lake/users-general-warehouse/alice/*",
                "arn:aws:s3:::cdm-lake/users-sql-warehouse/alice",
                "arn:aws:s3:::cdm-lake/users-sql-warehouse/alice/*",
                "arn:aws:s3:::cdm-lake/users-sql-warehouse/alice/u_alice__*",
                "arn:aws:s3:::cdm-lake/users-sql-warehouse/alice/u_alice__*/*",
            ],
        },
        {
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": [
                "arn:aws:s3:::cdm-lake/users-general-warehouse/alice",
                "arn:aws:s3:::cdm-lake/users-general-warehouse/alice/*",
                "arn:aws:s3:::cdm-lake/users-sql-warehouse/alice/u_alice__*",
                "arn:aws:s3:::cdm-lake/users-sql-warehouse/alice/u_alice__*/*",
            ],
        },
        {
            "Effect": "Allow",
            "Action": ["s3:DeleteObject"],
            "Resource": [
                "arn:aws:s3:::cdm-lake/users-general-warehouse/alice/*",
                "arn:aws:s3:::cdm-lake/users-sql-warehouse/alice/u_alice__*/*",
            ],
        },
    ],
}


def compact(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


def many_grants(count: int, seed: int = 7) -> list[Grant]:
    """Distinct share-like grants over two buckets, with a mix of levels."""
    rng = random.Random(seed)
    grants = []
    for i in range(count):
        bucket = "cdm-lake" if i % 10 else "cts"
        owner = f"user{i % 37:02d}"
        key = f"users-general-warehouse/{owner}/project-{i:04d}/data"
        grants.append(Grant(bucket, key, write=rng.random() < 0.5))
    return grants


# -- shape ----------------------------------------------------------------------------------


def test_user_home_template_renders_exactly() -> None:
    docs = render_policy_documents(ALICE_HOME)
    assert docs == [ALICE_HOME_DOCUMENT]
    assert compact(docs[0]) == compact(ALICE_HOME_DOCUMENT)  # key order too


def test_read_only_grant_has_no_write_statements() -> None:
    [doc] = render_policy_documents([Grant("cts", "logs")])
    assert doc == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetBucketLocation"],
                "Resource": ["arn:aws:s3:::cts"],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": ["arn:aws:s3:::cts"],
                "Condition": {"StringLike": {"s3:prefix": ["logs", "logs/*"]}},
            },
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": ["arn:aws:s3:::cts/logs", "arn:aws:s3:::cts/logs/*"],
            },
        ],
    }


def test_system_template_groups_statements_by_sorted_bucket() -> None:
    [doc] = render_policy_documents(Layout.user_system_grants("alice"))
    summary = [(s["Action"][0], s["Resource"]) for s in doc["Statement"]]
    assert summary == [
        ("s3:GetBucketLocation", ["arn:aws:s3:::cdm-spark-job-logs"]),
        ("s3:ListBucket", ["arn:aws:s3:::cdm-spark-job-logs"]),
        (
            "s3:GetObject",
            [
                "arn:aws:s3:::cdm-spark-job-logs/spark-job-logs/alice",
                "arn:aws:s3:::cdm-spark-job-logs/spark-job-logs/alice/*",
            ],
        ),
        (
            "s3:PutObject",
            [
                "arn:aws:s3:::cdm-spark-job-logs/spark-job-logs/alice",
                "arn:aws:s3:::cdm-spark-job-logs/spark-job-logs/alice/*",
            ],
        ),
        ("s3:DeleteObject", ["arn:aws:s3:::cdm-spark-job-logs/spark-job-logs/alice/*"]),
        ("s3:GetBucketLocation", ["arn:aws:s3:::cts"]),
        ("s3:ListBucket", ["arn:aws:s3:::cts"]),
        (
            "s3:GetObject",
            [
                "arn:aws:s3:::cts/io",
                "arn:aws:s3:::cts/io/*",
                "arn:aws:s3:::cts/logs",
                "arn:aws:s3:::cts/logs/*",
            ],
        ),
        ("s3:PutObject", ["arn:aws:s3:::cts/io", "arn:aws:s3:::cts/io/*"]),
        ("s3:DeleteObject", ["arn:aws:s3:::cts/io/*"]),
    ]


def test_every_statement_is_allow_with_one_action_and_a_resource_list() -> None:
    for doc in render_policy_documents(many_grants(300), max_bytes=4000):
        assert doc["Version"] == "2012-10-17"
        assert doc["Statement"]
        for statement in doc["Statement"]:
            assert statement["Effect"] == "Allow"
            assert isinstance(statement["Action"], list)
            assert len(statement["Action"]) == 1
            assert isinstance(statement["Resource"], list)
            assert statement["Resource"]


# -- determinism and collapsing -------------------------------------------------------------


def test_shuffled_input_gives_identical_output() -> None:
    grants = [*ALICE_HOME, *Layout.user_system_grants("alice"), *many_grants(400)]
    expected = [compact(doc) for doc in render_policy_documents(grants, max_bytes=8000)]
    rng = random.Random(1)
    for _ in range(5):
        shuffled = grants[:]
        rng.shuffle(shuffled)
        got = [compact(doc) for doc in render_policy_documents(shuffled, max_bytes=8000)]
        assert got == expected
    assert len(expected) > 1


def test_duplicates_collapse() -> None:
    once = render_policy_documents(ALICE_HOME)
    assert render_policy_documents(ALICE_HOME * 3) == once


def test_write_subsumes_read_on_the_same_key() -> None:
    share = "users-general-warehouse/bob/exp1"
    both = [Grant("cdm-lake", share, write=False), Grant("cdm-lake", share, write=True)]
    assert render_policy_documents(both) == render_policy_documents([both[1]])
    assert render_policy_documents(both[::-1]) == render_policy_documents([both[1]])
    [doc] = render_policy_documents(both)
    assert grants_from_document(doc) == [Grant("cdm-lake", share, write=True)]


def test_nested_grants_are_kept_apart() -> None:
    outer = Grant("cdm-lake", "users-general-warehouse/bob", write=False)
    inner = Grant("cdm-lake", "users-general-warehouse/bob/exp1", write=True)
    [doc] = render_policy_documents([inner, outer])
    assert grants_from_document(doc) == [outer, inner]


def test_template_wildcard_is_rendered_verbatim() -> None:
    [doc] = render_policy_documents(LAYOUT.group_grants("kbase", write=True))
    text = compact(doc)
    assert '"arn:aws:s3:::cdm-lake/tenant-sql-warehouse/kbase/kbase_*"' in text
    assert '"arn:aws:s3:::cdm-lake/tenant-sql-warehouse/kbase/kbase_*/*"' in text
    assert '"tenant-sql-warehouse/kbase/kbase_*"' in text


# -- splitting ------------------------------------------------------------------------------


def test_everything_fitting_is_one_document() -> None:
    docs = render_policy_documents([*ALICE_HOME, *many_grants(20)])
    assert len(docs) == 1
    assert document_size(docs[0]) <= 20480


def test_thousand_grants_split_across_documents() -> None:
    shares = many_grants(1000)
    # A share sorting before alice's own prefixes, so only pinning puts the template first.
    shares.append(Grant("cdm-lake", "users-general-warehouse/aaron/early", write=True))
    docs = render_policy_documents(shares, max_bytes=20480, pinned=ALICE_HOME)

    assert len(docs) > 3
    for doc in docs:
        assert document_size(doc) <= 20480
        assert document_size(doc) == len(compact(doc).encode())

    per_doc = [grants_from_document(doc) for doc in docs]
    flat = [grant for grants in per_doc for grant in grants]
    assert len(flat) == len(set(flat)) == len(shares) + len(ALICE_HOME)
    assert set(flat) == set(shares) | set(ALICE_HOME)
    assert set(ALICE_HOME) <= set(per_doc[0])

    # Greedy: the first grant of each next document would not have fitted in the previous one.
    for previous, following in itertools.pairwise(per_doc):
        grown = render_policy_documents([*previous, following[0]], max_bytes=10**9)
        assert document_size(grown[0]) > 20480


def test_split_documents_are_self_contained() -> None:
    for doc in render_policy_documents(many_grants(1000), max_bytes=20480):
        by_action: dict[str, set[str]] = {}
        for statement in doc["Statement"]:
            for resource in statement["Resource"]:
                bucket = resource.removeprefix("arn:aws:s3:::").split("/")[0]
                by_action.setdefault(statement["Action"][0], set()).add(bucket)
        buckets = by_action["s3:GetObject"]
        assert by_action["s3:GetBucketLocation"] == buckets
        assert by_action["s3:ListBucket"] == buckets


def test_wildcard_template_grants_come_first_without_pinning() -> None:
    template = Grant("cdm-lake", "users-sql-warehouse/zed/u_zed__*", write=True)
    docs = render_policy_documents([*many_grants(1000), template], max_bytes=20480)
    assert len(docs) > 1
    assert template in grants_from_document(docs[0])


def test_pinned_grants_are_rendered_even_if_not_in_grants() -> None:
    [doc] = render_policy_documents([], pinned=ALICE_HOME)
    assert doc == ALICE_HOME_DOCUMENT


def test_no_grants_is_an_error() -> None:
    with pytest.raises(ValueError, match="without grants"):
        render_policy_documents([])


@pytest.mark.parametrize(
    "grant",
    [Grant("", "x"), Grant("cdm-lake", ""), Grant("cdm-lake", "/x"), Grant("cdm-lake", "x/")],
)
def test_malformed_grant_is_an_error(grant: Grant) -> None:
    with pytest.raises(ValueError, match="malformed grant"):
        render_policy_documents([grant])


def test_single_oversized_grant_is_a_policy_error() -> None:
    huge = Grant("cdm-lake", "k" * 1000, write=True)
    with pytest.raises(PolicyOperationError) as caught:
        render_policy_documents([huge], max_bytes=2000)
    assert caught.value.code == 20016
    assert render_policy_documents([huge], max_bytes=20480)


def test_policy_name_at() -> None:
    assert policy_name_at("user-home-policy-alice", 1) == "user-home-policy-alice"
    assert [policy_name_at("group-policy-kbasero", n) for n in (2, 3, 12)] == [
        "group-policy-kbasero--2",
        "group-policy-kbasero--3",
        "group-policy-kbasero--12",
    ]
    with pytest.raises(ValueError):
        policy_name_at("x", 0)


# -- inverse --------------------------------------------------------------------------------


def test_round_trip() -> None:
    grants = {*ALICE_HOME, *Layout.user_system_grants("alice"), *many_grants(200)}
    docs = render_policy_documents(grants, max_bytes=20480)
    recovered = [grant for doc in docs for grant in grants_from_document(doc)]
    assert set(recovered) == grants
    assert len(recovered) == len(grants)


def test_grants_from_document_is_sorted() -> None:
    [doc] = render_policy_documents(Layout.user_system_grants("alice"))
    assert grants_from_document(doc) == sorted(Layout.user_system_grants("alice"))


def test_grants_from_document_accepts_minio_variations() -> None:
    doc: dict[str, Any] = {
        "version": "2012-10-17",
        "statement": [
            {"effect": "Allow", "action": "s3:GetObject", "resource": "arn:aws:s3:::b1/p1/*"},
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:GetObject"],
                "Resource": ["arn:aws:s3:::b1/p2", "arn:aws:s3:::b1/p2/*"],
                "Condition": {"StringEquals": {"aws:SourceIp": ["10.0.0.1"]}},
            },
            {"Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::b2/all-of-it"]},
            {"Effect": "Deny", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b3/no"]},
            {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::b4"]},
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b5/*"]},
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b6"]},
            {"Effect": "Allow", "Action": ["s3:DeleteObject"], "Resource": ["arn:aws:s3:::b7/x"]},
            "not a statement",
        ],
    }
    assert grants_from_document(doc) == [
        Grant("b1", "p1", write=False),
        Grant("b1", "p2", write=True),
        Grant("b2", "all-of-it", write=True),
    ]


def test_grants_from_document_accepts_a_single_statement_object() -> None:
    doc = {
        "Version": "2012-10-17",
        "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/k"},
    }
    assert grants_from_document(doc) == [Grant("b", "k")]


def test_grants_from_document_of_an_empty_document() -> None:
    assert grants_from_document({}) == []
    assert grants_from_document({"Version": "2012-10-17", "Statement": []}) == []


def test_generators_are_accepted() -> None:
    nothing: list[Grant] = []
    docs = render_policy_documents((g for g in nothing), pinned=(g for g in ALICE_HOME))
    assert docs == [ALICE_HOME_DOCUMENT]


def test_overflow_names_never_collide_with_hyphenated_usernames() -> None:
    second = policy_name_at("user-home-policy-alice", 2)
    assert second == "user-home-policy-alice--2"
    assert second != "user-home-policy-alice-2"  # the home policy of user "alice-2"
    assert is_overflow_name("user-home-policy-alice", "user-home-policy-alice--2")
    assert not is_overflow_name("user-home-policy-alice", "user-home-policy-alice-2")
    assert not is_overflow_name("user-home-policy-alice", "user-home-policy-alice--1")
    assert not is_overflow_name("user-home-policy-alice", "user-home-policy-alice--x")


def _reference_canonical(doc: Any) -> str:
    """``canonical_document`` before its fast paths (issue 12): the output must not change."""

    def value_of(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k).lower(): value_of(v) for k, v in value.items()}
        if isinstance(value, Sequence) and not isinstance(value, str):
            items = [value_of(item) for item in value]
            return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
        return value

    statements = []
    for statement in policies._statements(policies._field(doc, "Statement")):
        shaped: dict[str, Any] = {}
        for key, value in statement.items():
            name = str(key).lower()
            if name == "sid" and not value:
                continue
            shaped[name] = [value] if isinstance(value, str) and name != "effect" else value
        statements.append(value_of(shaped))
    canonical = {
        "version": policies._field(doc, "Version"),
        "statement": sorted(statements, key=lambda st: json.dumps(st, sort_keys=True)),
    }
    return json.dumps(canonical, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize("seed", range(40))
def test_canonical_document_is_unchanged_by_its_fast_paths(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = ["a", "b", "!", '"', "\\", "/", "*", "é", "\u2028", " ", "~", "0"]

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))

    def value(depth: int) -> Any:
        pick = rng.randint(0, 6 if depth < 3 else 3)
        if pick <= 1:
            return text()
        if pick == 2:
            return rng.choice([True, None, 3, 2.5])
        if pick == 3:
            return (text(), text())  # a tuple: a Sequence that is not a list
        if pick <= 5:
            return [value(depth + 1) for _ in range(rng.randint(0, 5))]
        return {rng.choice(["K", "k", text()]): value(depth + 1) for _ in range(rng.randint(0, 3))}

    statements = [
        {
            "Effect": "Allow",
            "Sid": rng.choice(["", "x"]),
            "Action": value(1),
            "Resource": [text() for _ in range(rng.randint(1, 8))],
            "Condition": {"StringLike": {"s3:prefix": value(1)}},
        }
        for _ in range(rng.randint(1, 5))
    ]
    doc = {"Version": "2012-10-17", "Statement": statements}
    assert policies.canonical_document(doc) == _reference_canonical(doc)
