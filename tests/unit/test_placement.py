"""Stable placement of grants into documents, and the size model it packs with."""

from __future__ import annotations

import random

import pytest

from minio_manager.errors import PolicyOperationError
from minio_manager.governance.layout import Grant, Layout
from minio_manager.governance.placement import (
    FIRST,
    Placement,
    Previous,
    Where,
    as_grants,
    document_bytes,
    place,
)
from minio_manager.governance.policies import document_size, render_document

HOME = Layout().user_home_grants("bob")
LIMIT = 20480


def shares(count: int, *, start: int = 0, write: bool = True) -> list[Grant]:
    return [
        Grant("cdm-lake", f"users-general-warehouse/alice/data/set-{n:05d}", write)
        for n in range(start, start + count)
    ]


def where(grant: Grant) -> Where:
    return (grant.bucket, grant.key)


def written(placement: Placement) -> dict[int, Previous]:
    """The placement as the next update reads it back."""
    return {
        p: Previous(dict(levels), placement.sizes[p]) for p, levels in placement.documents.items()
    }


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
    assert {where(g) for g in HOME} <= set(placement.documents[FIRST])
    assert sorted(placement.documents) == list(range(1, len(placement.documents) + 1))
    for position, levels in placement.documents.items():
        size = document_size(render_document(as_grants(levels)))
        assert size == placement.sizes[position] <= LIMIT
    assert placement.changed == frozenset(placement.documents)
    assert placement.removed == frozenset()


def test_one_new_grant_changes_one_document() -> None:
    before = place({}, HOME, shares(1000), max_bytes=LIMIT)
    extra = Grant("cdm-lake", "users-general-warehouse/alice/data/aaa-first-in-order", True)
    after = place(written(before), HOME, [*shares(1000), extra], max_bytes=LIMIT)
    assert len(after.changed) == 1
    [position] = after.changed
    assert where(extra) in after.documents[position]
    for other, levels in after.documents.items():
        if other != position:
            assert levels == before.documents[other]
    assert after.sizes[position] == document_size(
        render_document(as_grants(after.documents[position]))
    )


def test_one_revoked_grant_changes_one_document_and_its_hole_is_reused() -> None:
    before = place({}, HOME, shares(1000), max_bytes=LIMIT)
    gone = shares(1, start=500)[0]
    remaining = [g for g in shares(1000) if g != gone]
    after = place(written(before), HOME, remaining, max_bytes=LIMIT)
    [position] = after.changed
    assert where(gone) in before.documents[position]
    assert where(gone) not in after.documents[position]
    back = Grant(gone.bucket, gone.key + "x", True)  # same size as the one removed
    again = place(written(after), HOME, [*remaining, back], max_bytes=LIMIT)
    assert again.changed == frozenset({position})
    assert len(again.documents) == len(before.documents)


def test_level_change_rewrites_only_its_document_while_it_fits() -> None:
    before = place({}, HOME, shares(300, write=False), max_bytes=LIMIT)
    last = max(before.documents)  # the last document has room to spare
    bucket, key = next(iter(before.documents[last]))
    grants = [g for g in shares(300, write=False) if g.key != key] + [Grant(bucket, key, True)]
    after = place(written(before), HOME, grants, max_bytes=LIMIT)
    assert after.changed == frozenset({last})
    assert after.documents[last][(bucket, key)] is True


def test_overfull_document_gives_up_its_last_grants() -> None:
    before = place({}, HOME, shares(300, write=False), max_bytes=LIMIT)
    # Every grant of the second document becomes write: it no longer fits.
    raised = set(before.documents[2])
    grants = [Grant(g.bucket, g.key, where(g) in raised) for g in shares(300)]
    after = place(written(before), HOME, grants, max_bytes=LIMIT)
    assert 2 in after.changed
    for position, levels in after.documents.items():
        assert document_size(render_document(as_grants(levels))) == after.sizes[position] <= LIMIT
    placed = [w for levels in after.documents.values() for w in levels]
    assert len(placed) == len(set(placed)) == 300 + len(HOME)


def test_emptied_overflow_document_is_removed() -> None:
    before = place({}, HOME, shares(300), max_bytes=LIMIT)
    last = max(before.documents)
    kept = [g for g in shares(300) if where(g) not in before.documents[last]]
    after = place(written(before), HOME, kept, max_bytes=LIMIT)
    assert after.removed == frozenset({last})
    assert after.changed == frozenset()


def test_unchanged_records_change_nothing() -> None:
    before = place({}, HOME, shares(500), max_bytes=LIMIT)
    after = place(written(before), HOME, list(reversed(shares(500))), max_bytes=LIMIT)
    assert after.changed == after.removed == frozenset()
    assert after.documents == before.documents
    assert after.sizes == before.sizes


def test_template_stays_first_even_if_placed_elsewhere_before() -> None:
    share = shares(1)[0]
    before = {
        FIRST: Previous({where(share): share.write}),
        2: Previous({where(g): g.write for g in HOME}),
    }
    after = place(before, HOME, [share], max_bytes=LIMIT)
    assert {where(g) for g in HOME} <= set(after.documents[FIRST])
    assert after.removed == frozenset({2})
    assert after.changed == frozenset({FIRST})


def test_single_oversized_grant_is_a_policy_error() -> None:
    huge = Grant("cdm-lake", "k" * 1000, write=True)
    with pytest.raises(PolicyOperationError):
        place({}, [], [huge], max_bytes=2000)
