"""The split of the suite into parts run side by side (tests/support/parts.py)."""

from __future__ import annotations

import pytest

from tests.support.parts import parse_part, split

IDS = (
    [f"tests/integration/test_big.py::t{n}" for n in range(100)]
    + [f"tests/integration/test_mid.py::t{n}" for n in range(60)]
    + [f"tests/integration/test_small{m}.py::t{n}" for m in range(8) for n in range(5)]
    + [f"tests/unit/test_u{m}.py::t{n}" for m in range(5) for n in range(100)]
)


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_every_module_is_in_exactly_one_part(parts: int) -> None:
    chosen = split(IDS, parts)
    modules = {i.split("::")[0] for i in IDS}
    assert len(chosen) == parts
    assert set().union(*chosen) == modules
    assert sum(len(c) for c in chosen) == len(modules)


def test_two_parts_carry_about_the_same_integration_tests() -> None:
    """Modules of default weight: the tests are what is balanced."""
    first, second = split(IDS, 2)
    counts = [
        sum(1 for i in IDS if i.split("::")[0] in part and "/integration/" in i)
        for part in (first, second)
    ]
    assert sorted(counts) == [100, 100]


def test_the_split_does_not_depend_on_the_order_of_the_ids() -> None:
    assert split(IDS, 2) == split(list(reversed(IDS)), 2)


@pytest.mark.parametrize("bad", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_bad_part_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="MMS_TEST_PART"):
        parse_part(bad)


def test_part_is_parsed() -> None:
    assert parse_part(" 2/3 ") == (2, 3)


def test_a_heavy_module_counts_for_its_seconds() -> None:
    """test_migrations.py's tests take ~5x an average one: its 20 tests balance 100 others."""
    ids = [f"tests/integration/test_migrations.py::t{n}" for n in range(20)] + [
        f"tests/integration/test_other{m}.py::t{n}" for m in range(10) for n in range(10)
    ]
    first, second = split(ids, 2)
    heavy = first if "tests/integration/test_migrations.py" in first else second
    assert heavy == {"tests/integration/test_migrations.py"}
