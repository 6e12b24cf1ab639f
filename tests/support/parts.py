"""Split the suite into parts run side by side (``MMS_TEST_PART=i/n``, ``make test-seaweedfs``).

A part is a set of whole modules (module-scoped fixtures stay in one process). Modules are
dealt largest first to the part with the least weight so far; an integration test weighs one,
a unit test next to nothing (no store, no service). The split depends only on the collected
test ids, so every part computes the same one and the parts never overlap or miss a module.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

UNIT_WEIGHT = 0.02
"""A unit test against an integration test (milliseconds against seconds)."""
PART = re.compile(r"^(\d+)/(\d+)$")


def parse_part(value: str) -> tuple[int, int]:
    """``"i/n"`` (1 ≤ i ≤ n) → ``(i, n)``."""
    found = PART.match(value.strip())
    if found is None or not 1 <= int(found[1]) <= int(found[2]):
        raise ValueError(f"MMS_TEST_PART must be i/n with 1 <= i <= n, got {value!r}")
    return int(found[1]), int(found[2])


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def weight(module: str) -> float:
    return 1.0 if "/integration/" in f"/{module}" else UNIT_WEIGHT


def split(nodeids: Iterable[str], parts: int) -> list[set[str]]:
    """The modules of each part (a list of ``parts`` disjoint sets covering every module)."""
    counts = Counter(module_of(n) for n in nodeids)
    loads = [0.0] * parts
    chosen: list[set[str]] = [set() for _ in range(parts)]
    for module in sorted(counts, key=lambda m: (-counts[m] * weight(m), m)):
        lightest = min(range(parts), key=lambda i: (loads[i], i))
        chosen[lightest].add(module)
        loads[lightest] += counts[module] * weight(module)
    return chosen
