"""The API docs work without Internet access: every asset comes from the service itself."""

from __future__ import annotations

import re

import httpx


async def test_swagger_ui_and_redoc_use_local_assets(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        html = (await client.get(page)).text
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
        assert assets, page
        for url in assets:
            assert url.startswith("/docs-assets/"), url
            response = await client.get(url)
            assert response.status_code == 200, url
            assert len(response.content) > 1000


async def test_openapi_declares_the_bearer_scheme(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert spec["paths"]["/credentials/"]["get"]["security"] == [{"HTTPBearer": []}]
