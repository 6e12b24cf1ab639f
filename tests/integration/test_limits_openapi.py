"""Issue 8 (items 6-8): body cap before auth, declared limits, an exact OpenAPI, 405 ``Allow``.

Each test here failed before the change: bodies were read in full before the 401, path rules
and most 4xx answers were missing from the OpenAPI, 405s had no ``Allow``, ``/health`` had no
model, and Swagger UI kept the token in localStorage.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from minio_manager.health.router import HealthResponse
from minio_manager.openapi import ROUTE_ERRORS
from tests.support.governance import assert_error
from tests.support.kbase import TestUser

MIB = 1024 * 1024
CAP = 64 * 1024
ENVELOPE = "#/components/schemas/ErrorEnvelope"
METHODS = ("get", "post", "put", "patch", "delete")


async def _spec(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


# -- 6. limits ----------------------------------------------------------------------------------
async def test_a_20_mib_body_is_413_before_authentication(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/sharing/share",
        content=b"x" * (20 * MIB),
        headers={"content-type": "application/json"},
    )
    assert_error(response, 413, 30030)
    assert response.headers.get("connection") == "close"


async def test_a_chunked_body_is_cut_off_at_the_cap(client: httpx.AsyncClient) -> None:
    """No Content-Length: the body is counted as it streams and reading stops at the cap."""
    chunk = b"x" * 16384
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(20 * MIB // len(chunk)):
            sent += len(chunk)
            yield chunk

    response = await client.post(
        "/tenants/sometenant", content=body(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, 30030)
    assert sent <= CAP + len(chunk), f"{sent} bytes were read"


async def test_413_also_with_a_valid_token(client: httpx.AsyncClient, user: TestUser) -> None:
    response = await client.post(
        "/sharing/share",
        content=b"{" + b" " * (CAP + 1) + b"}",
        headers={**user.headers, "content-type": "application/json"},
    )
    assert_error(response, 413, 30030)


async def test_a_body_under_the_cap_is_parsed_as_before(
    client: httpx.AsyncClient, user: TestUser
) -> None:
    response = await client.post(
        "/sharing/share", json={"path": "s3a://x/y", "with_users": ["a" * 65]}, headers=user.headers
    )
    assert_error(response, 422, 30010)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/sharing/share", {"path": "s3a://cdm-lake/" + "k" * 4100}),
        ("/sharing/share", {"path": "s3a://cdm-lake/k", "with_users": ["u" * 65]}),
        ("/sharing/unshare", {"path": "s3a://cdm-lake/k", "from_groups": ["g" * 65]}),
        ("/sharing/share", {"path": "s3a://cdm-lake/k", "with_groups": ["ab"] * 501}),
        ("/sharing/make-public", {"path": "s3a://cdm-lake/" + "k" * 4100}),
    ],
)
async def test_strings_and_lists_have_limits(
    client: httpx.AsyncClient, user: TestUser, path: str, body: dict[str, Any]
) -> None:
    assert_error(await client.post(path, json=body, headers=user.headers), 422, 30010)


async def test_tenant_text_fields_have_limits(client: httpx.AsyncClient, user: TestUser) -> None:
    for body in (
        {"display_name": "d" * 257},
        {"description": "d" * 4097},
        {"website": "https://" + "w" * 2048},
        {"organization": "bad\x01"},
    ):
        response = await client.patch("/tenants/sometenant", json=body, headers=user.headers)
        assert_error(response, 422, 30010)


async def test_every_request_string_and_list_declares_a_bound(client: httpx.AsyncClient) -> None:
    spec = await _spec(client)
    unbounded = []

    def walk(where: str, schema: dict[str, Any]) -> None:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            walk(where, spec["components"]["schemas"][name])
            return
        for sub in schema.get("anyOf", []):
            walk(where, sub)
        if schema.get("type") == "string" and "maxLength" not in schema and "enum" not in schema:
            unbounded.append(where)
        if schema.get("type") == "array":
            if "maxItems" not in schema:
                unbounded.append(where)
            walk(where + "[]", schema.get("items", {}))
        for name, prop in schema.get("properties", {}).items():
            walk(f"{where}.{name}", prop)

    for method, path, op in _operations(spec):
        for param in op.get("parameters", []):
            walk(f"{method} {path} {param['name']}", param["schema"])
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body:
            walk(f"{method} {path} body", body["schema"])
    assert unbounded == []


# -- 7. the OpenAPI and the answers -------------------------------------------------------------
async def test_path_parameters_carry_their_rules(client: httpx.AsyncClient) -> None:
    spec = await _spec(client)
    seen = set()
    for method, path, op in _operations(spec):
        for param in op.get("parameters", []):
            if param["in"] != "path":
                continue
            schema = param["schema"]
            seen.add(param["name"])
            assert {"pattern", "minLength", "maxLength", "not"} <= set(schema), (method, path)
            if param["name"] == "username":
                assert schema["pattern"] == r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$"
                assert (schema["minLength"], schema["maxLength"]) == (3, 64)
            else:
                assert schema["pattern"].startswith("^[a-z][a-z0-9]")
                assert schema["minLength"] == 2
                assert schema["maxLength"] in (62, 64)
    assert seen == {"username", "group", "tenant"}
    tenant = spec["paths"]["/tenants/{tenant}"]["get"]["parameters"][0]["schema"]
    assert tenant["maxLength"] == 62  # base names only; `g`ro forms are refused
    group = spec["paths"]["/workspaces/me/groups/{group}"]["get"]["parameters"][0]["schema"]
    assert group["maxLength"] == 64  # `g`ro forms accepted


async def test_every_operation_documents_its_errors_with_the_envelope(
    client: httpx.AsyncClient,
) -> None:
    spec = await _spec(client)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for method, path, op in _operations(spec):
        responses = op["responses"]
        errors = {s for s in responses if s.startswith(("4", "5"))}
        assert "413" in errors, (method, path)
        if path != "/health":
            assert {"401", "403", "503"} <= errors, (method, path)
        if any(p["in"] == "path" for p in op.get("parameters", [])):
            assert "400" in errors, (method, path)
        if op.get("parameters") and any(p["in"] == "query" for p in op["parameters"]):
            assert "422" in errors, (method, path)
        if "requestBody" in op:
            assert "422" in errors, (method, path)
        for status in errors:
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            if path == "/health" and status == "503":
                assert ref.endswith("/HealthResponse")
            else:
                assert ref == ENVELOPE, (method, path, status)
            assert re.search(r"codes \d{5}", responses[status]["description"]) or (
                path == "/health"
            ), (method, path, status)


async def test_every_operation_has_its_entry_in_route_errors(client: httpx.AsyncClient) -> None:
    """A new route must say which domain answers it gives (minio_manager.openapi)."""
    spec = await _spec(client)
    operations = {(method, path) for method, path, _ in _operations(spec)}
    assert operations == set(ROUTE_ERRORS)


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("POST", "/management/users/a b", 20030),
        ("POST", "/management/users/ab", 20030),  # MinIO's 3-character minimum
        ("DELETE", "/management/users/-lead", 20030),
        ("POST", "/management/groups/Upper", 20040),
        ("POST", "/management/groups/" + "a" * 63, 20040),
        ("DELETE", "/management/groups/" + "a" * 61 + "ro", 20040),
        ("GET", "/workspaces/me/groups/" + "a" * 63, 20040),
        ("GET", "/tenants/" + "a" * 63, 40010),
        ("GET", "/tenants/a_b/members", 40010),
        ("POST", "/tenants/abc/members/x..y", 20030),
    ],
)
async def test_a_path_breaking_its_rule_keeps_the_domain_code(
    client: httpx.AsyncClient, admin: TestUser, method: str, path: str, code: int
) -> None:
    """Pattern violations answer 400 with the name's own code, as the OpenAPI says."""
    response = await client.request(method, path, headers=admin.headers)
    assert_error(response, 400, code)


async def test_auth_comes_before_path_rules(client: httpx.AsyncClient, user: TestUser) -> None:
    assert_error(await client.post("/management/users/a b"), 401, 10010)
    assert_error(await client.post("/management/users/a b", headers=user.headers), 403, 10040)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/tenants/abc", "DELETE, GET, PATCH, POST"),
        ("DELETE", "/credentials/", "GET"),
        ("GET", "/sharing/share", "POST"),
        ("PUT", "/management/groups/abc/members/bob", "DELETE, POST"),
        # The listings: `names` is not a user or group in the templated paths.
        ("POST", "/management/users/names", "GET"),
        ("DELETE", "/management/groups/names", "GET"),
    ],
)
async def test_405_carries_allow(
    client: httpx.AsyncClient, admin: TestUser, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path, headers=admin.headers)
    assert_error(response, 405, 40405)
    assert response.headers["allow"] == allow


async def test_allow_matches_the_openapi_path_item(client: httpx.AsyncClient) -> None:
    spec = await _spec(client)
    for path, item in spec["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "abc", path)
        documented = sorted(m.upper() for m in item if m in METHODS)
        unused = next(m for m in ("PUT", "PATCH", "DELETE", "POST") if m not in documented)
        response = await client.request(unused, concrete)
        assert response.status_code == 405, (unused, path)
        assert response.headers["allow"] == ", ".join(documented), path


async def test_health_has_its_model(client: httpx.AsyncClient) -> None:
    spec = await _spec(client)
    responses = spec["paths"]["/health"]["get"]["responses"]
    for status in ("200", "503"):
        ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/HealthResponse")
    model = spec["components"]["schemas"]["HealthResponse"]
    assert model["properties"]["status"]["enum"] == ["healthy", "unhealthy", "alive"]
    response = await client.get("/health")
    assert response.status_code == 200
    assert HealthResponse.model_validate(response.json()).status == "healthy"


# -- 8 (part). Swagger UI -----------------------------------------------------------------------
async def test_swagger_ui_does_not_persist_the_token(client: httpx.AsyncClient) -> None:
    html = (await client.get("/docs")).text
    assert re.search(r'"persistAuthorization":\s*false', html), html
    assert "localStorage" not in html
