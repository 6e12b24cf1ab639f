"""Split the suite into parts run side by side (``MMS_TEST_PART=i/n``, ``make test-seaweedfs``).

A part is a set of whole modules (module-scoped fixtures stay in one process). Modules are
dealt heaviest first to the part with the least weight so far; a module weighs its number of
tests times the seconds one of its tests takes: ``SECONDS_PER_TEST`` for the modules far from
the average, ``DEFAULT_SECONDS`` for other integration tests, next to nothing for a unit test
(no store, no service). The split depends only on the collected test ids, so every part
computes the same one and the parts never overlap or miss a module.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

DEFAULT_SECONDS = 3.0
UNIT_SECONDS = 0.05
SECONDS_PER_TEST = {
    "test_login_storm.py": 120.0,
    "test_prometheus.py": 26.0,
    "test_migrations.py": 16.0,
    "test_logging.py": 14.0,
    "test_hardening.py": 7.6,
    "test_fencing.py": 5.0,
    "test_role_matrix.py": 4.1,
    "test_sharing.py": 5.0,
    "test_tenants.py": 4.0,
    "test_limits_openapi.py": 1.9,
    "test_credentials.py": 1.2,
    "test_audit.py": 1.1,
    "test_api_edges.py": 1.1,
}
"""Mean seconds per test (setup, call and teardown) of the modules far from the average, as
measured on SeaweedFS on 2026-12-02 (load 3-9, docs/benchmarks.md); only the ratios matter."""
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
    """Seconds one test of ``module`` (a path) takes, roughly."""
    if "/integration/" not in f"/{module}":
        return UNIT_SECONDS
    return SECONDS_PER_TEST.get(module.rsplit("/", 1)[-1], DEFAULT_SECONDS)


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
