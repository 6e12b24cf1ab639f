"""Tests for the local KBase auth2 stand-in (scripts/kbase_stub.py)."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from scripts.kbase_stub import KBaseStubServer, load_seed, start_stub, stop_stub

REPO = Path(__file__).resolve().parents[2]
STUB_SCRIPT = REPO / "scripts" / "kbase_stub.py"
SEED_FILE = REPO / "scripts" / "kbase_seed.json"

DAY_MS = 24 * 3600 * 1000

SEED: dict[str, Any] = {
    "users": [
        {
            "user": "alice",
            "display": "Alice Liddell",
            "email": "alice@example.org",
            "customroles": ["BERDL_USER"],
            "disabled": False,
            "tokens": [
                {
                    "token": "tok-alice",
                    "type": "Login",
                    "expires_in_ms": 30 * DAY_MS,
                    "cachefor_ms": 300_000,
                },
                {"token": "tok-alice-agent", "type": "Agent", "cachefor_ms": 60_000},
            ],
        },
        {
            "user": "bob",
            "display": "Bob Builder",
            "email": "bob@example.org",
            "customroles": ["BERDL_USER"],
            "tokens": [{"token": "tok-bob"}],
        },
        {
            "user": "admin",
            "display": "Ada Admin",
            "email": "admin@example.org",
            "customroles": ["BERDL_USER", "KBASE_ADMIN"],
            "tokens": [{"token": "tok-admin"}],
        },
        {
            "user": "old",
            "display": "Old Timer",
            "email": "old@example.org",
            "customroles": ["BERDL_USER"],
            "tokens": [{"token": "tok-old-expired", "expires_in_ms": -1000}],
        },
        {
            "user": "gone",
            "display": "Gone Away",
            "email": "gone@example.org",
            "customroles": ["BERDL_USER"],
            "disabled": True,
            "tokens": [{"token": "tok-gone-1"}, {"token": "tok-gone-2"}],
        },
    ]
}

ERROR_KEYS = {"httpcode", "httpstatus", "appcode", "apperror", "message", "callid", "time"}


@pytest.fixture
def stub() -> Iterator[tuple[KBaseStubServer, str]]:
    server, base_url = start_stub("127.0.0.1", 0, SEED)
    try:
        yield server, base_url
    finally:
        stop_stub(server)


@pytest.fixture
def client(stub: tuple[KBaseStubServer, str]) -> Iterator[httpx.Client]:
    _, base_url = stub
    with httpx.Client(base_url=base_url, timeout=5.0) as c:
        yield c


def auth(token: str) -> dict[str, str]:
    return {"Authorization": token, "Accept": "application/json"}


def now_ms() -> int:
    return int(time.time() * 1000)


def assert_error(resp: httpx.Response, httpcode: int, appcode: int | None, apperror: str) -> None:
    assert resp.status_code == httpcode
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == ERROR_KEYS
    assert err["httpcode"] == httpcode
    assert isinstance(err["httpstatus"], str) and err["httpstatus"]
    assert err["appcode"] == appcode
    assert err["apperror"] == apperror
    if appcode is not None:
        assert err["message"].startswith(f"{appcode} {apperror}")
    assert isinstance(err["callid"], str) and re.fullmatch(r"[0-9a-f]+", err["callid"])
    assert isinstance(err["time"], int) and abs(err["time"] - now_ms()) < 60_000


# --------------------------------------------------------------------------- start-up


def test_start_stub_returns_base_url_on_free_port(stub: tuple[KBaseStubServer, str]) -> None:
    server, base_url = stub
    port = server.server_address[1]
    assert port != 0
    assert base_url == f"http://127.0.0.1:{port}/"


def test_root_needs_no_auth(client: httpx.Client) -> None:
    before = now_ms()
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["version"] == "0.8.0"
    assert body["servicename"] == "Authentication Service"
    assert body["gitcommithash"] == "stub"
    assert isinstance(body["servertime"], int)
    assert before - 1000 <= body["servertime"] <= now_ms() + 1000  # milliseconds


# --------------------------------------------------------------------------- /token


def test_token_fields_and_units(client: httpx.Client) -> None:
    resp = client.get("/api/V2/token", headers=auth("tok-alice"))
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {
        "type",
        "id",
        "created",
        "expires",
        "name",
        "user",
        "custom",
        "cachefor",
        "mfa",
    }
    assert body["type"] == "Login"
    assert body["user"] == "alice"
    assert body["name"] is None
    assert body["custom"] == {}
    assert body["mfa"] == "Unknown"
    uuid.UUID(body["id"])
    # all times in milliseconds since the epoch, durations in milliseconds
    assert abs(body["created"] - now_ms()) < 60_000
    assert body["expires"] - body["created"] == 30 * DAY_MS
    assert body["cachefor"] == 300_000


def test_token_defaults_and_per_token_ids(client: httpx.Client) -> None:
    agent = client.get("/api/V2/token", headers=auth("tok-alice-agent")).json()
    login = client.get("/api/V2/token", headers=auth("tok-alice")).json()
    again = client.get("/api/V2/token", headers=auth("tok-alice")).json()
    bob = client.get("/api/V2/token", headers=auth("tok-bob")).json()
    assert agent["type"] == "Agent"
    assert agent["cachefor"] == 60_000
    assert agent["expires"] - agent["created"] == 30 * DAY_MS  # default lifetime
    assert bob["cachefor"] == 300_000  # default cachefor
    assert bob["type"] == "Login"
    assert login["id"] == again["id"]
    assert len({agent["id"], login["id"], bob["id"]}) == 3


# --------------------------------------------------------------------------- /me


def test_me_fields(client: httpx.Client) -> None:
    resp = client.get("/api/V2/me", headers=auth("tok-alice"))
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {
        "user",
        "anonid",
        "local",
        "display",
        "email",
        "created",
        "lastlogin",
        "customroles",
        "roles",
        "idents",
        "policyids",
    }
    assert body["user"] == "alice"
    assert body["display"] == "Alice Liddell"
    assert body["email"] == "alice@example.org"
    assert body["local"] is False
    assert body["customroles"] == ["BERDL_USER"]
    assert body["roles"] == []
    assert body["idents"] == []
    assert body["policyids"] == []
    uuid.UUID(body["anonid"])
    assert abs(body["created"] - now_ms()) < 60_000
    assert abs(body["lastlogin"] - now_ms()) < 60_000


def test_me_admin_roles_and_stable_anonid(client: httpx.Client) -> None:
    admin = client.get("/api/V2/me", headers=auth("tok-admin")).json()
    assert admin["customroles"] == ["BERDL_USER", "KBASE_ADMIN"]
    a1 = client.get("/api/V2/me", headers=auth("tok-alice")).json()
    a2 = client.get("/api/V2/me", headers=auth("tok-alice-agent")).json()
    assert a1["anonid"] == a2["anonid"] != admin["anonid"]


# --------------------------------------------------------------------------- /users


def test_users_list(client: httpx.Client) -> None:
    resp = client.get(
        "/api/V2/users/", params={"list": "alice,bob,nobody"}, headers=auth("tok-bob")
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"alice": "Alice Liddell", "bob": "Bob Builder"}


def test_users_list_without_trailing_slash(client: httpx.Client) -> None:
    resp = client.get("/api/V2/users", params={"list": "admin"}, headers=auth("tok-alice"))
    assert resp.status_code == 200
    assert resp.json() == {"admin": "Ada Admin"}


@pytest.mark.parametrize("query", ["", "?list=", "?list=,,", "?list=nobody"])
def test_users_list_empty(client: httpx.Client, query: str) -> None:
    resp = client.get(f"/api/V2/users/{query}", headers=auth("tok-alice"))
    assert resp.status_code == 200
    assert resp.json() == {}


def test_users_list_needs_valid_token(client: httpx.Client) -> None:
    assert_error(client.get("/api/V2/users/?list=alice"), 400, 10010, "No authentication token")
    assert_error(
        client.get("/api/V2/users/?list=alice", headers=auth("nope")), 401, 10020, "Invalid token"
    )


# --------------------------------------------------------------------------- auth errors


@pytest.mark.parametrize("path", ["/api/V2/token", "/api/V2/me", "/api/V2/users/"])
def test_missing_token_is_400_10010(client: httpx.Client, path: str) -> None:
    resp = client.get(path)
    assert_error(resp, 400, 10010, "No authentication token")
    assert resp.json()["error"]["httpstatus"] == "Bad Request"
    assert resp.json()["error"]["message"] == "10010 No authentication token"


def test_empty_token_is_400_10010(client: httpx.Client) -> None:
    resp = client.get("/api/V2/me", headers={"Authorization": ""})
    assert_error(resp, 400, 10010, "No authentication token")


def test_blank_token_is_400_10010(stub: tuple[KBaseStubServer, str]) -> None:
    # httpx refuses a whitespace-only header value; http.client sends it as is
    server, _ = stub
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    try:
        conn.request("GET", "/api/V2/me", headers={"Authorization": "   "})
        raw = conn.getresponse()
        resp = httpx.Response(raw.status, headers=raw.getheaders(), content=raw.read())
    finally:
        conn.close()
    assert_error(resp, 400, 10010, "No authentication token")


@pytest.mark.parametrize("path", ["/api/V2/token", "/api/V2/me", "/api/V2/users/"])
def test_bearer_prefix_is_an_unknown_token(client: httpx.Client, path: str) -> None:
    resp = client.get(path, headers=auth("Bearer tok-alice"))
    assert_error(resp, 401, 10020, "Invalid token")
    assert resp.json()["error"]["httpstatus"] == "Unauthorized"
    assert resp.json()["error"]["message"] == "10020 Invalid token"


def test_unknown_token_is_401_10020(client: httpx.Client) -> None:
    assert_error(client.get("/api/V2/token", headers=auth("nope")), 401, 10020, "Invalid token")
    assert_error(client.get("/api/V2/me", headers=auth("nope")), 401, 10020, "Invalid token")


def test_error_callids_differ(client: httpx.Client) -> None:
    ids = {client.get("/api/V2/me", headers=auth("x")).json()["error"]["callid"] for _ in range(5)}
    assert len(ids) == 5


def test_seeded_expired_token_is_401(client: httpx.Client) -> None:
    for path in ("/api/V2/token", "/api/V2/me", "/api/V2/users/"):
        resp = client.get(path, headers=auth("tok-old-expired"))
        assert_error(resp, 401, 10020, "Invalid token")


def test_expire_control_endpoint(client: httpx.Client) -> None:
    assert client.get("/api/V2/me", headers=auth("tok-bob")).status_code == 200
    resp = client.post("/_stub/tokens/tok-bob/expire")
    assert resp.status_code == 200
    assert resp.json() == {"expired": True}
    assert "tok-bob" not in resp.text
    for path in ("/api/V2/token", "/api/V2/me", "/api/V2/users/"):
        assert_error(client.get(path, headers=auth("tok-bob")), 401, 10020, "Invalid token")
    # the user's other tokens and other users are unaffected
    assert client.get("/api/V2/me", headers=auth("tok-alice")).status_code == 200


def test_expire_unknown_token_is_404(client: httpx.Client) -> None:
    resp = client.post("/_stub/tokens/no-such-token/expire")
    assert resp.status_code == 404
    assert set(resp.json()["error"]) == ERROR_KEYS


def test_expire_url_encoded_token(client: httpx.Client) -> None:
    client.post("/_stub/users", json={"user": "odd", "tokens": [{"token": "a/b c"}]})
    assert client.get("/api/V2/token", headers=auth("a/b c")).status_code == 200
    assert client.post("/_stub/tokens/a%2Fb%20c/expire").status_code == 200
    assert client.get("/api/V2/token", headers=auth("a/b c")).status_code == 401


# --------------------------------------------------------------------------- disabled accounts


def test_seeded_disabled_user_me_403_then_401(client: httpx.Client) -> None:
    # before any /me call the token still exists, so /token answers like the real service
    assert client.get("/api/V2/token", headers=auth("tok-gone-2")).status_code == 200
    resp = client.get("/api/V2/me", headers=auth("tok-gone-1"))
    assert_error(resp, 403, 20010, "Account disabled")
    assert resp.json()["error"]["httpstatus"] == "Forbidden"
    assert resp.json()["error"]["message"] == "20010 Account disabled"
    # all of the user's tokens were deleted at that moment
    for token in ("tok-gone-1", "tok-gone-2"):
        for path in ("/api/V2/me", "/api/V2/token", "/api/V2/users/"):
            assert_error(client.get(path, headers=auth(token)), 401, 10020, "Invalid token")


def test_disable_control_endpoint(client: httpx.Client) -> None:
    assert client.get("/api/V2/me", headers=auth("tok-alice")).status_code == 200
    resp = client.post("/_stub/users/alice/disable")
    assert resp.status_code == 200
    assert resp.json() == {"user": "alice", "disabled": True}
    assert client.get("/api/V2/token", headers=auth("tok-alice-agent")).status_code == 200
    assert_error(
        client.get("/api/V2/me", headers=auth("tok-alice")), 403, 20010, "Account disabled"
    )
    assert_error(client.get("/api/V2/me", headers=auth("tok-alice")), 401, 10020, "Invalid token")
    assert_error(
        client.get("/api/V2/token", headers=auth("tok-alice-agent")), 401, 10020, "Invalid token"
    )
    # other users are unaffected, and alice's display name is still listed
    assert client.get("/api/V2/me", headers=auth("tok-bob")).status_code == 200
    users = client.get("/api/V2/users/?list=alice", headers=auth("tok-bob")).json()
    assert users == {"alice": "Alice Liddell"}


def test_disable_unknown_user_is_404(client: httpx.Client) -> None:
    resp = client.post("/_stub/users/nobody/disable")
    assert resp.status_code == 404
    assert set(resp.json()["error"]) == ERROR_KEYS


# --------------------------------------------------------------------------- /_stub/users


def test_add_user(client: httpx.Client) -> None:
    user = {
        "user": "dave",
        "display": "Dave Null",
        "email": "dave@example.org",
        "customroles": ["BERDL_USER"],
        "disabled": False,
        "tokens": [{"token": "tok-dave", "type": "Developer", "cachefor_ms": 1000}],
    }
    resp = client.post("/_stub/users", json=user)
    assert resp.status_code == 200
    assert resp.json() == {"user": "dave", "tokens": ["tok-dave"]}
    me = client.get("/api/V2/me", headers=auth("tok-dave")).json()
    assert me["display"] == "Dave Null"
    assert me["customroles"] == ["BERDL_USER"]
    token = client.get("/api/V2/token", headers=auth("tok-dave")).json()
    assert token["type"] == "Developer"
    assert token["cachefor"] == 1000


def test_replace_user_replaces_tokens(client: httpx.Client) -> None:
    resp = client.post(
        "/_stub/users",
        json={
            "user": "bob",
            "display": "Robert",
            "email": "robert@example.org",
            "customroles": ["BERDL_USER", "KBASE_ADMIN"],
            "tokens": [{"token": "tok-bob-2"}],
        },
    )
    assert resp.status_code == 200
    assert_error(client.get("/api/V2/me", headers=auth("tok-bob")), 401, 10020, "Invalid token")
    me = client.get("/api/V2/me", headers=auth("tok-bob-2")).json()
    assert me["display"] == "Robert"
    assert me["customroles"] == ["BERDL_USER", "KBASE_ADMIN"]


def test_add_user_generates_missing_token(client: httpx.Client) -> None:
    resp = client.post("/_stub/users", json={"user": "eve", "tokens": [{}]})
    assert resp.status_code == 200
    (token,) = resp.json()["tokens"]
    assert client.get("/api/V2/me", headers=auth(token)).json()["user"] == "eve"


def test_add_disabled_user(client: httpx.Client) -> None:
    client.post("/_stub/users", json={"user": "x", "disabled": True, "tokens": [{"token": "tx"}]})
    assert_error(client.get("/api/V2/me", headers=auth("tx")), 403, 20010, "Account disabled")


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"display": "no name"}', b'{"user": "a", "tokens": "x"}'],
)
def test_add_user_rejects_bad_body(client: httpx.Client, body: bytes) -> None:
    resp = client.post("/_stub/users", content=body)
    assert resp.status_code == 400
    assert set(resp.json()["error"]) == ERROR_KEYS


# --------------------------------------------------------------------------- outage modes


def test_mode_error500(client: httpx.Client) -> None:
    resp = client.post("/_stub/mode", json={"mode": "error500"})
    assert resp.status_code == 200
    assert resp.json()["mode"] == "error500"
    for path in ("/", "/api/V2/me", "/api/V2/token"):
        r = client.get(path, headers=auth("tok-alice"))
        assert r.status_code == 500
        assert r.headers["content-type"] == "application/json"
        err = r.json()["error"]
        assert set(err) == ERROR_KEYS
        assert err["httpcode"] == 500
        assert err["httpstatus"] == "Internal Server Error"
    # control endpoints keep working during an outage
    assert client.get("/_stub/stats").status_code == 200
    client.post("/_stub/mode", json={"mode": "normal"})
    assert client.get("/api/V2/me", headers=auth("tok-alice")).status_code == 200


def test_mode_html502(client: httpx.Client) -> None:
    client.post("/_stub/mode", json={"mode": "html502"})
    r = client.get("/api/V2/me", headers=auth("tok-alice"))
    assert r.status_code == 502
    assert r.headers["content-type"].startswith("text/html")
    assert "502 Bad Gateway" in r.text
    with pytest.raises(json.JSONDecodeError):
        r.json()
    client.post("/_stub/mode", json={"mode": "normal"})
    assert client.get("/api/V2/me", headers=auth("tok-alice")).status_code == 200


def test_mode_slow(stub: tuple[KBaseStubServer, str]) -> None:
    _, base_url = stub
    with httpx.Client(base_url=base_url, timeout=5.0) as c:
        resp = c.post("/_stub/mode", json={"mode": "slow", "delay_s": 0.5})
        assert resp.json() == {"mode": "slow", "delay_s": 0.5}
    with (
        httpx.Client(base_url=base_url, timeout=0.1) as impatient,
        pytest.raises(httpx.TimeoutException),
    ):
        impatient.get("/api/V2/me", headers=auth("tok-alice"))
    with httpx.Client(base_url=base_url, timeout=5.0) as patient:
        start = time.monotonic()
        resp = patient.get("/api/V2/me", headers=auth("tok-alice"))
        assert resp.status_code == 200
        assert resp.json()["user"] == "alice"
        assert time.monotonic() - start >= 0.45
        # control endpoints are not slowed down
        start = time.monotonic()
        patient.post("/_stub/mode", json={"mode": "normal"})
        assert time.monotonic() - start < 0.4
        start = time.monotonic()
        assert patient.get("/api/V2/me", headers=auth("tok-alice")).status_code == 200
        assert time.monotonic() - start < 0.4


@pytest.mark.parametrize(
    "body",
    [{"mode": "broken"}, {}, {"mode": "slow", "delay_s": -1}, {"mode": "slow", "delay_s": "x"}],
)
def test_mode_rejects_bad_body(client: httpx.Client, body: dict[str, Any]) -> None:
    resp = client.post("/_stub/mode", json=body)
    assert resp.status_code == 400
    assert set(resp.json()["error"]) == ERROR_KEYS
    assert client.get("/api/V2/me", headers=auth("tok-alice")).status_code == 200


# --------------------------------------------------------------------------- stats


def test_stats_count_and_reset(client: httpx.Client) -> None:
    assert client.get("/_stub/stats").json() == {"me": 0, "token": 0, "users": 0}
    client.get("/")
    client.get("/api/V2/me", headers=auth("tok-alice"))
    client.get("/api/V2/me", headers=auth("nope"))  # failures are counted too
    client.get("/api/V2/me")
    client.get("/api/V2/token", headers=auth("tok-alice"))
    client.get("/api/V2/users/?list=bob", headers=auth("tok-alice"))
    client.get("/api/V2/users?list=bob", headers=auth("tok-alice"))
    assert client.get("/_stub/stats").json() == {"me": 3, "token": 1, "users": 2}
    resp = client.post("/_stub/stats/reset")
    assert resp.json() == {"me": 0, "token": 0, "users": 0}
    assert client.get("/_stub/stats").json() == {"me": 0, "token": 0, "users": 0}


def test_stats_count_requests_during_outage(client: httpx.Client) -> None:
    client.post("/_stub/mode", json={"mode": "error500"})
    client.get("/api/V2/me", headers=auth("tok-alice"))
    client.post("/_stub/mode", json={"mode": "html502"})
    client.get("/api/V2/token", headers=auth("tok-alice"))
    assert client.get("/_stub/stats").json() == {"me": 1, "token": 1, "users": 0}


def test_concurrent_requests_are_all_counted(stub: tuple[KBaseStubServer, str]) -> None:
    _, base_url = stub

    with httpx.Client(base_url=base_url, timeout=10.0) as c:

        def call(i: int) -> int:
            token = ("tok-alice", "tok-bob", "tok-admin")[i % 3]
            return c.get("/api/V2/me", headers=auth(token)).status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            codes = list(pool.map(call, range(90)))
        assert codes == [200] * 90
        assert c.get("/_stub/stats").json()["me"] == 90


# --------------------------------------------------------------------------- misc


def test_unknown_path_is_404_envelope(client: httpx.Client) -> None:
    for path in ("/nope", "/api/V2/nope", "/_stub/nope"):
        resp = client.get(path, headers=auth("tok-alice"))
        assert_error(resp, 404, None, "Not Found")
        assert resp.json()["error"]["httpstatus"] == "Not Found"


def test_wrong_method_is_405_envelope(client: httpx.Client) -> None:
    assert_error(
        client.post("/api/V2/me", headers=auth("tok-alice")), 405, None, "Method Not Allowed"
    )
    assert_error(client.get("/_stub/users/alice/disable"), 405, None, "Method Not Allowed")


def test_server_is_quiet_and_never_prints_tokens(
    client: httpx.Client, capfd: pytest.CaptureFixture[str]
) -> None:
    client.get("/api/V2/me", headers=auth("tok-alice"))
    client.get("/api/V2/me", headers=auth("Bearer secret-ish"))
    client.get("/nope")
    client.post("/_stub/tokens/tok-bob/expire")
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""


def test_dev_seed_file() -> None:
    seed = load_seed(str(SEED_FILE))
    users = {u["user"]: u for u in seed["users"]}
    assert set(users) >= {"alice", "bob", "carol", "admin", "noroles"}
    for name in ("alice", "bob", "carol"):
        assert users[name]["customroles"] == ["BERDL_USER"]
    assert set(users["admin"]["customroles"]) == {"BERDL_USER", "KBASE_ADMIN"}
    assert users["noroles"]["customroles"] == []
    server, base_url = start_stub("127.0.0.1", 0, seed)
    try:
        with httpx.Client(base_url=base_url, timeout=5.0) as c:
            for name in users:
                me = c.get("/api/V2/me", headers=auth(f"dev-token-{name}"))
                assert me.status_code == 200
                assert me.json()["user"] == name
    finally:
        stop_stub(server)


def test_cli_prints_listening_line_and_serves() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(STUB_SCRIPT),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--seed",
            str(SEED_FILE),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"kbase-stub listening on (http://127\.0\.0\.1:(\d+)/)\n", line)
        assert match, line
        base_url = match.group(1)
        assert int(match.group(2)) > 0
        with httpx.Client(base_url=base_url, timeout=5.0) as c:
            assert c.get("/").json()["servicename"] == "Authentication Service"
            assert c.get("/api/V2/me", headers=auth("dev-token-alice")).json()["user"] == "alice"
            assert c.get("/api/V2/me", headers=auth("bad-token")).status_code == 401
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    # nothing after the listening line, and in particular no tokens
    assert out == ""
    assert err == ""
