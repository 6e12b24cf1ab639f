"""The liveness probe's light /health: no dependency is asked, so an outage restarts nothing."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import REGISTRY

pytestmark = pytest.mark.integration


# Calls only a health check makes (background work, e.g. a reconciler, never pings these).
PROBE_CALLS = {("object_store", "health"), ("kbase", "service")}


def dependency_calls() -> float:
    """Health-check calls made so far (the in-process app shares this registry)."""
    return sum(
        sample.value
        for family in REGISTRY.collect()
        if family.name == "mms_dependency_call_duration_seconds"
        for sample in family.samples
        if sample.name.endswith("_count")
        and (sample.labels["dependency"], sample.labels["operation"]) in PROBE_CALLS
    )


async def test_light_health_asks_no_dependency(client: httpx.AsyncClient) -> None:
    full = await client.get("/health")
    assert set(full.json()["dependencies"]) == {"database", "redis", "object_store", "auth"}
    before = dependency_calls()
    assert before > 0  # the full check did ask them
    light = await client.get("/health", params={"light": "true"})
    assert light.status_code == 200
    assert light.json()["status"] == "alive"
    assert dependency_calls() == before
