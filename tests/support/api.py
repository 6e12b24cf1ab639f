"""Small helpers for calling the service under test the way clients do."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.kbase import TestUser
from tests.support.s3 import S3User

BUCKET = "cdm-lake"


async def issue(client: httpx.AsyncClient, user: TestUser) -> S3User:
    """GET /credentials/ (provisioning the user on first call) and an S3 client holding them."""
    response = await client.get("/credentials/", headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    return S3User(body["access_key"], body["secret_key"])


def home_url(user: TestUser, rest: str = "") -> str:
    return f"s3a://{BUCKET}/users-general-warehouse/{user.name}/{rest}"


def home_key(user: TestUser, rest: str = "") -> str:
    return f"users-general-warehouse/{user.name}/{rest}".rstrip("/")


async def post(
    client: httpx.AsyncClient, caller: TestUser, path: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(path, json=body, headers=caller.headers)
