"""Stable placement of grants into documents, and the size model it packs with."""

from __future__ import annotations

import random

import pytest

from minio_manager.errors import PolicyOperationError
from minio_manager.governance.layout import Grant, Layout
from minio_manager.governance.placement import FIRST, document_bytes, place
from minio_manager.governance.policies import document_size, render_document

HOME = Layout().user_home_grants("bob")
LIMIT = 20480


def shares(count: int, *, start: int = 0, write: bool = True) -> list[Grant]:
    return [
        Grant("cdm-lake", f"users-general-warehouse/alice/data/set-{n:05d}", write)
        for n in range(start, start + count)
    ]


def test_size_model_matches_the_rendered_bytes() -> None:
    rng = random.Random(7)
    buckets = ["cdm-lake", "cts", "b2"]
    for _ in range(300):
        grants = [
            Grant(
                rng.choice(buckets),
                "p/" + "".join(rng.choice('ab/_.-"\\é~ ') for _ in range(rng.randint(1, 30))),
                rng.random() < 0.5,
            )
            for _ in range(rng.randint(1, 12))
        ]
        grants = [g for g in grants if not g.key.endswith("/") and "//" not in g.key]
        if grants:
            assert document_bytes(grants) == document_size(render_document(grants)), grants


def test_from_scratch_every_document_fits_and_template_is_first() -> None:
    placement = place({}, HOME, shares(1000), max_bytes=LIMIT)
    assert len(placement.documents) > 3
    assert set(HOME) <= set(placement.documents[FIRST])
    assert sorted(placement.documents) == list(range(1, len(placement.documents) + 1))
    for grants in placement.documents.values():
        assert document_size(render_document(grants)) <= LIMIT
    assert placement.changed == frozenset(placement.documents)
    assert placement.removed == frozenset()


def test_one_new_grant_changes_one_document() -> None:
    before = place({}, HOME, shares(1000), max_bytes=LIMIT).documents
    extra = Grant("cdm-lake", "users-general-warehouse/alice/data/aaa-first-in-order", True)
    after = place(before, HOME, [*shares(1000), extra], max_bytes=LIMIT)
    assert len(after.changed) == 1
    [position] = after.changed
    assert extra in after.documents[position]
    for other, grants in after.documents.items():
        if other != position:
            assert grants == before[other]


def test_one_revoked_grant_changes_one_document_and_its_hole_is_reused() -> None:
    before = place({}, HOME, shares(1000), max_bytes=LIMIT).documents
    gone = shares(1, start=500)[0]
    remaining = [g for g in shares(1000) if g != gone]
    after = place(before, HOME, remaining, max_bytes=LIMIT)
    [position] = after.changed
    assert gone in before[position] and gone not in after.documents[position]
    back = Grant(gone.bucket, gone.key + "x", True)  # same size as the one removed
    again = place(after.documents, HOME, [*remaining, back], max_bytes=LIMIT)
    assert again.changed == frozenset({position})
    assert len(again.documents) == len(before)


def test_level_change_rewrites_only_its_document_while_it_fits() -> None:
    before = place({}, HOME, shares(300, write=False), max_bytes=LIMIT).documents
    last = max(before)  # the last document has room to spare
    read = before[last][0]
    raised = Grant(read.bucket, read.key, write=True)
    grants = [g for g in shares(300, write=False) if g != read] + [raised]
    after = place(before, HOME, grants, max_bytes=LIMIT)
    assert after.changed == frozenset({last})
    assert raised in after.documents[last]


def test_overfull_document_gives_up_its_last_grants() -> None:
    before = place({}, HOME, shares(300, write=False), max_bytes=LIMIT).documents
    # Every grant of the second document becomes write: it no longer fits.
    raised = {(g.bucket, g.key) for g in before[2]}
    grants = [Grant(g.bucket, g.key, (g.bucket, g.key) in raised) for g in shares(300)]
    after = place(before, HOME, grants, max_bytes=LIMIT)
    assert 2 in after.changed
    for grants_in in after.documents.values():
        assert document_size(render_document(grants_in)) <= LIMIT
    placed = [g for doc in after.documents.values() for g in doc]
    assert len(placed) == len(set(placed)) == 300 + len(HOME)


def test_emptied_overflow_document_is_removed() -> None:
    before = place({}, HOME, shares(300), max_bytes=LIMIT).documents
    last = max(before)
    kept = [g for g in shares(300) if g not in before[last]]
    after = place(before, HOME, kept, max_bytes=LIMIT)
    assert after.removed == frozenset({last})
    assert after.changed == frozenset()


def test_unchanged_records_change_nothing() -> None:
    before = place({}, HOME, shares(500), max_bytes=LIMIT).documents
    after = place(before, HOME, list(reversed(shares(500))), max_bytes=LIMIT)
    assert after.changed == after.removed == frozenset()
    assert after.documents == before


def test_template_stays_first_even_if_placed_elsewhere_before() -> None:
    before = {FIRST: (shares(1)[0],), 2: tuple(HOME)}
    after = place(before, HOME, shares(1), max_bytes=LIMIT)
    assert set(HOME) <= set(after.documents[FIRST])
    assert after.removed == frozenset({2})


def test_single_oversized_grant_is_a_policy_error() -> None:
    huge = Grant("cdm-lake", "k" * 1000, write=True)
    with pytest.raises(PolicyOperationError):
        place({}, [], [huge], max_bytes=2000)
