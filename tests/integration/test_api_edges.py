"""Edge cases found in review: every one answers in the envelope with a 4xx, never a 500."""

from __future__ import annotations

import uuid

import httpx

from tests.support.kbase import KBase, TestUser


def _envelope(response: httpx.Response, status: int, code: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_type", "message"}
    assert body["error"] == code


async def test_non_ascii_or_control_token_is_a_malformed_header(
    client: httpx.AsyncClient,
) -> None:
    for token in ("tök", "a\tb"):
        response = await client.get(
            "/credentials/", headers=[(b"authorization", f"Bearer {token}".encode())]
        )
        _envelope(response, 401, 10030)


async def test_malformed_json_without_a_token_is_401_first(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/sharing/share", content=b"{bad", headers={"content-type": "application/json"}
    )
    _envelope(response, 401, 10010)


async def test_malformed_json_with_a_token_is_422(
    client: httpx.AsyncClient, user: TestUser
) -> None:
    response = await client.post(
        "/sharing/share",
        content=b"{bad",
        headers={"content-type": "application/json", **user.headers},
    )
    _envelope(response, 422, 30010)


async def test_nul_in_tenant_metadata_is_422(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser
) -> None:
    group = f"g{uuid.uuid4().hex[:10]}"
    assert (
        await client.post(f"/management/groups/{group}", headers=admin.headers)
    ).status_code == 201
    try:
        for field in ("description", "organization", "display_name"):
            response = await client.patch(
                f"/tenants/{group}", json={field: "a\u0000b"}, headers=admin.headers
            )
            _envelope(response, 422, 30010)
    finally:
        await client.delete(f"/management/groups/{group}", headers=admin.headers)


async def test_audit_paging_and_filters_cannot_overflow(
    client: httpx.AsyncClient, admin: TestUser
) -> None:
    huge = await client.get(
        "/management/audit", params={"page": "99999999999999999999"}, headers=admin.headers
    )
    _envelope(huge, 422, 30010)
    nul = await client.get("/management/audit", params={"actor": "\u0000x"}, headers=admin.headers)
    _envelope(nul, 422, 30010)


async def test_method_not_allowed_is_in_the_envelope(client: httpx.AsyncClient) -> None:
    response = await client.delete("/credentials/")
    _envelope(response, 405, 40405)


async def test_openapi_documents_the_error_envelope(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    share = spec["paths"]["/sharing/share"]["post"]["responses"]
    ref = share["422"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/ErrorEnvelope")
    assert "HTTPValidationError" not in spec["components"]["schemas"]


async def test_request_id_is_echoed_only_when_plain(client: httpx.AsyncClient) -> None:
    plain = await client.get("/health", headers={"x-request-id": "abc-123"})
    assert plain.headers["x-request-id"] == "abc-123"
    odd = await client.get("/health", headers={"x-request-id": "a b<script>"})
    assert odd.headers["x-request-id"] != "a b<script>"
    assert len(odd.headers["x-request-id"]) == 32
