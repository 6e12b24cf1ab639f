"""/metrics: the Prometheus text format, labelled by route template, with dependency timings."""

from __future__ import annotations

import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.api import issue
from tests.support.kbase import TestUser
from tests.support.stack import store_kind

# The store call that creates a user, in the store's own vocabulary (timed per adapter).
CREATE_USER = "admin:add-user" if store_kind() == "minio" else "iam:CreateUser"

pytestmark = pytest.mark.integration


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def test_requests_are_counted_by_route_template_and_status(
    client: httpx.AsyncClient, admin: TestUser
) -> None:
    before = await scrape(client)
    name = f"nobody{uuid.uuid4().hex[:8]}"
    response = await client.post(
        f"/management/users/{name}/rotate-credentials", headers=admin.headers
    )
    assert response.status_code == 404
    await client.get(f"/no/such/{name}")
    after = await scrape(client)

    route = "/management/users/{username}/rotate-credentials"
    key = {"method": "POST", "route": route, "status": "404"}
    assert (
        total(after, "mms_http_requests_total", **key)
        == total(before, "mms_http_requests_total", **key) + 1
    )
    assert total(after, "mms_http_request_duration_seconds_count", **key) >= 1
    # Raw paths never become labels: an unknown path is counted as <unmatched>.
    assert total(after, "mms_http_requests_total", route="<unmatched>", status="404") >= 1
    assert not any(name in str(labels) for (_, labels) in after)


async def test_dependencies_locks_caches_and_provisioning_are_measured(
    client: httpx.AsyncClient, user: TestUser
) -> None:
    await issue(client, user)  # KBase lookup, provisioning in MinIO, a lock, PostgreSQL rows
    await issue(client, user)  # the token is cached now
    await client.get("/tenants", headers=user.headers)
    await client.get("/tenants", headers=user.headers)
    samples = await scrape(client)

    for dependency in ("object_store", "postgres", "redis", "kbase"):
        assert (
            total(samples, "mms_dependency_call_duration_seconds_count", dependency=dependency) > 0
        )
    assert total(samples, "mms_dependency_call_duration_seconds_count", operation=CREATE_USER) > 0
    assert (
        total(samples, "mms_lock_wait_seconds_count", lock="credential_lock", outcome="acquired")
        > 0
    )
    assert total(samples, "mms_cache_lookups_total", cache="auth", result="hit") > 0
    assert total(samples, "mms_cache_lookups_total", cache="auth", result="miss") > 0
    assert total(samples, "mms_cache_lookups_total", cache="membership") > 0
    assert total(samples, "mms_provisioned_total", kind="user") > 0
    # The outbox backlog is read at scrape time (its exact value depends on other tests).
    assert ("mms_reconciler_backlog", frozenset()) in samples
    assert ("mms_reconciler_failing", frozenset()) in samples


async def test_metrics_need_no_token_and_are_not_in_the_openapi_document(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/metrics")).status_code == 200
    schema = (await client.get("/openapi.json")).json()
    assert "/metrics" not in schema["paths"]
