"""Pure pieces behind sharing, regeneration and the audit log."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from minio_manager.audit.service import AuditPage
from minio_manager.governance.layout import Grant, Layout
from minio_manager.governance.paths import home_owner_of, parse_share_path, self_and_ancestors
from minio_manager.governance.placement import render_policy_documents
from minio_manager.governance.policies import canonical_document
from minio_manager.sharing.schemas import MAX_TARGETS, PathRequest, ShareRequest, UnshareRequest
from minio_manager.sharing.service import AccessInfo, SharingOutcome

LAYOUT = Layout()


@pytest.mark.parametrize(
    ("raw", "owner"),
    [
        ("s3a://cdm-lake/users-general-warehouse/alice", "alice"),
        ("s3a://cdm-lake/users-general-warehouse/alice/data/x", "alice"),
        ("s3://cdm-lake/users-sql-warehouse/bob/u_bob__db", "bob"),
        ("s3a://cdm-lake/users-general-warehouse", None),
        ("s3a://cdm-lake/users-general-warehouse-old/alice/x", None),
        ("s3a://cdm-lake/tenant-general-warehouse/team/x", None),
        ("s3a://other-bucket/users-general-warehouse/alice/x", None),
    ],
)
def test_home_owner_of(raw: str, owner: str | None) -> None:
    assert home_owner_of(parse_share_path(raw), LAYOUT) == owner


def test_self_and_ancestors() -> None:
    assert self_and_ancestors("a/b/c") == ["a", "a/b", "a/b/c"]
    assert self_and_ancestors("a") == ["a"]


def _doc(*grants: Grant) -> dict[str, Any]:
    (document,) = render_policy_documents(grants)
    return document


def test_canonical_document_ignores_order_and_case() -> None:
    document = _doc(Grant("b1", "x/y", True), Grant("b1", "a-b", False), Grant("b2", "k", False))
    shuffled: dict[str, Any] = {
        "version": document["Version"],
        "statement": [
            {
                key.lower(): list(reversed(value)) if isinstance(value, list) else value
                for key, value in statement.items()
            }
            for statement in reversed(document["Statement"])
        ],
    }
    assert shuffled != document
    assert canonical_document(shuffled) == canonical_document(document)


def test_canonical_document_single_values_and_empty_sid() -> None:
    listed = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:x"]}],
    }
    bare = {
        "Version": "2012-10-17",
        "Statement": {"Sid": "", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:x"},
    }
    assert canonical_document(bare) == canonical_document(listed)


def test_canonical_document_tells_different_grants_apart() -> None:
    read = _doc(Grant("b1", "x/y", False))
    write = _doc(Grant("b1", "x/y", True))
    other = _doc(Grant("b1", "x/z", False))
    assert len({canonical_document(d) for d in (read, write, other)}) == 3


def test_share_request_defaults_and_refusals() -> None:
    request = ShareRequest.model_validate({"path": "s3a://b/k"})
    assert (request.with_users, request.with_groups, request.permission) == ([], [], "write")
    for bad in (
        {"path": "s3a://b/k", "extra": 1},
        {"path": "s3a://b/k", "permission": "admin"},
        {"path": "s3a://b/k", "with_users": ["u"] * (MAX_TARGETS + 1)},
        {"with_users": ["u"]},
    ):
        with pytest.raises(ValidationError):
            ShareRequest.model_validate(bad)
    with pytest.raises(ValidationError):
        UnshareRequest.model_validate({"path": "s3a://b/k", "with_users": ["u"]})
    with pytest.raises(ValidationError):
        PathRequest.model_validate({"path": "s3a://b/k", "is_public": True})


def test_outcome_counts_and_public_flag() -> None:
    outcome = SharingOutcome(parse_share_path("s3a://cdm-lake/a/b"))
    outcome.succeeded(("user", "u1"))
    outcome.succeeded(("group", "g1"))
    assert (outcome.users, outcome.groups, outcome.success_count) == (["u1"], ["g1"], 2)
    path = outcome.path
    assert AccessInfo(path, [], ["globalusers"]).public
    assert AccessInfo(path, [], ["globalusersro"]).public
    assert not AccessInfo(path, [], ["globalusersx"]).public


@pytest.mark.parametrize(
    ("total", "page", "size", "pages", "has_next", "has_prev"),
    [
        (0, 1, 50, 0, False, False),
        (1, 1, 50, 1, False, False),
        (5, 1, 2, 3, True, False),
        (5, 3, 2, 3, False, True),
        (4, 2, 2, 2, False, True),
        (5, 9, 2, 3, False, True),
    ],
)
def test_audit_page_arithmetic(
    total: int, page: int, size: int, pages: int, has_next: bool, has_prev: bool
) -> None:
    result = AuditPage([], total, page, size)
    assert (result.total_pages, result.has_next, result.has_prev) == (pages, has_next, has_prev)
