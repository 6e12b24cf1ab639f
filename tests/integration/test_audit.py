"""GET /management/audit: every change is a row with the right actor; admins page through it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support.api import home_url, issue, post
from tests.support.kbase import KBase, TestUser


async def audit_page(client: httpx.AsyncClient, admin: TestUser, **params: Any) -> dict[str, Any]:
    response = await client.get("/management/audit", params=params, headers=admin.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_share_changes_are_audited_with_actor_and_request_id(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser
) -> None:
    alice, bob = kbase.add_user(), kbase.add_user()
    await issue(client, alice)
    await issue(client, bob)
    path = home_url(alice, "data/audited/")
    calls = [
        ("/sharing/share", {"path": path, "with_users": [bob.name], "permission": "read"}),
        ("/sharing/share", {"path": path, "with_users": [bob.name], "permission": "write"}),
        ("/sharing/unshare", {"path": path, "from_users": [bob.name]}),
        ("/sharing/make-public", {"path": path}),
        ("/sharing/make-private", {"path": path}),
    ]
    for n, (endpoint, body) in enumerate(calls):
        response = await client.post(
            endpoint, json=body, headers={**alice.headers, "X-Request-ID": f"req-audit-{n}"}
        )
        assert response.status_code == 200, response.text

    page = await audit_page(client, admin, target=path, page_size=50)
    entries = page["entries"]
    assert page["total_count"] == len(calls)
    assert [e["action"] for e in entries] == [
        "share.make_private",
        "share.make_public",
        "share.revoke",
        "share.grant",
        "share.grant",
    ]
    assert {e["actor"] for e in entries} == {alice.name}
    assert [e["request_id"] for e in entries] == [f"req-audit-{n}" for n in (4, 3, 2, 1, 0)]
    grant_write, grant_read = entries[3], entries[4]
    assert grant_read["details"] == {
        "target_type": "user",
        "target_name": bob.name,
        "level": "read",
        "previous_level": None,
    }
    assert grant_write["details"]["previous_level"] == "read"
    assert entries[1]["details"]["target_name"] == "globalusers"
    assert entries[1]["details"]["level"] == "read"
    assert entries[0]["details"]["removed_count"] == 1
    ats = [e["at"] for e in entries]
    assert ats == sorted(ats, reverse=True)
    assert set(entries[0]) == {"id", "at", "actor", "action", "target", "details", "request_id"}


async def test_filters_and_paging(client: httpx.AsyncClient, kbase: KBase, admin: TestUser) -> None:
    alice, bob = kbase.add_user(), kbase.add_user()
    await issue(client, alice)
    await issue(client, bob)
    for n in range(5):
        response = await post(
            client,
            alice,
            "/sharing/share",
            {"path": home_url(alice, f"data/page{n}"), "with_users": [bob.name]},
        )
        assert response.status_code == 200

    first = await audit_page(client, admin, actor=alice.name, action="share.grant", page_size=2)
    assert first["total_count"] == 5
    assert (first["page"], first["page_size"], first["total_pages"]) == (1, 2, 3)
    assert (first["has_next"], first["has_prev"]) == (True, False)
    assert [e["target"] for e in first["entries"]] == [
        home_url(alice, "data/page4/"),
        home_url(alice, "data/page3/"),
    ]
    last = await audit_page(
        client, admin, actor=alice.name, action="share.grant", page=3, page_size=2
    )
    assert [e["target"] for e in last["entries"]] == [home_url(alice, "data/page0/")]
    assert (last["has_next"], last["has_prev"]) == (False, True)
    beyond = await audit_page(client, admin, actor=alice.name, page=9, page_size=2)
    assert beyond["entries"] == [] and beyond["has_next"] is False

    issued = await audit_page(client, admin, actor=bob.name)
    assert [e["action"] for e in issued["entries"]] == ["credentials.issue"]
    assert issued["entries"][0]["target"] == bob.name
    nothing = await audit_page(client, admin, actor=alice.name, action="no.such.action")
    assert (nothing["total_count"], nothing["total_pages"], nothing["entries"]) == (0, 0, [])


async def test_admin_actions_are_audited_under_the_admin(
    client: httpx.AsyncClient, admin: TestUser
) -> None:
    response = await client.post("/management/migrate/regenerate-policies", headers=admin.headers)
    assert response.status_code == 200
    page = await audit_page(client, admin, actor=admin.name, action="policies.regenerate")
    assert page["total_count"] == 1
    details = page["entries"][0]["details"]
    assert details["users_updated"] == response.json()["users_updated"]


async def test_no_secret_ever_reaches_the_audit_log(
    client: httpx.AsyncClient, kbase: KBase, admin: TestUser
) -> None:
    carol = kbase.add_user()
    issued = (await client.get("/credentials/", headers=carol.headers)).json()["secret_key"]
    rotated = (await client.post("/credentials/rotate", headers=carol.headers)).json()
    secrets_seen = {issued, rotated["secret_key"], carol.token, admin.token}
    page_no, dump = 1, []
    while True:
        page = await audit_page(client, admin, page=page_no, page_size=500)
        dump.append(json.dumps(page["entries"]))
        if not page["has_next"]:
            break
        page_no += 1
    text = "".join(dump)
    assert carol.name in text
    assert not [s for s in secrets_seen if s in text]


@pytest.mark.parametrize(
    "params",
    [{"page": 0}, {"page": -1}, {"page_size": 0}, {"page_size": 501}, {"page": "x"}],
)
async def test_bad_paging_is_422(
    client: httpx.AsyncClient, admin: TestUser, params: dict[str, Any]
) -> None:
    response = await client.get("/management/audit", params=params, headers=admin.headers)
    assert response.status_code == 422
    assert response.json()["error"] == 30010


async def test_audit_is_admin_only(client: httpx.AsyncClient, user: TestUser) -> None:
    response = await client.get("/management/audit", headers=user.headers)
    assert response.status_code == 403
    assert response.json()["error"] == 10040
    assert (await client.get("/management/audit")).status_code == 401
