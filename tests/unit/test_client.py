"""The client package on its own: envelope → exceptions, bounded retries, typed results.

The network is an ``httpx.MockTransport`` and sleeping is recorded instead of done, so the
retry schedule is checked by what the client asked for, never by a clock.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from minio_manager_client import (
    AsyncMinioManagerClient,
    AuthenticationError,
    ConflictError,
    ConnectionFailedError,
    Credentials,
    ForbiddenError,
    MinioManagerClient,
    MinioManagerError,
    NotFoundError,
    RetryPolicy,
    ServiceUnavailableError,
    ValidationError,
)

URL = "http://mms.test"
SECRET = "s" * 40
CREDS = {"username": "alice", "access_key": "alice", "secret_key": SECRET}
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
Handler = Callable[[httpx.Request], httpx.Response]


def envelope(status: int, code: int, message: str = "nope") -> httpx.Response:
    return httpx.Response(
        status,
        json={"error": code, "error_type": "some_type", "message": message},
        headers={"X-Request-ID": "rid-1"},
    )


class Script:
    """Answers requests from a list, one per call, and remembers what was asked."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        # A fresh copy: a response object is bound to the (sync or async) client that read it.
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Record every backoff instead of waiting it out."""
    recorded: list[float] = []

    async def fake_async_sleep(delay: float) -> None:
        recorded.append(delay)

    monkeypatch.setattr("minio_manager_client.client.asyncio.sleep", fake_async_sleep)
    monkeypatch.setattr("minio_manager_client.client.time.sleep", recorded.append)
    yield recorded


def sync_client(handler: Handler, retry: RetryPolicy = FAST) -> MinioManagerClient:
    return MinioManagerClient(URL, "tok", retry=retry, transport=httpx.MockTransport(handler))


def async_client(handler: Handler, retry: RetryPolicy = FAST) -> AsyncMinioManagerClient:
    return AsyncMinioManagerClient(URL, "tok", retry=retry, transport=httpx.MockTransport(handler))


def both(handler: Handler, call: str, *args: Any, retry: RetryPolicy = FAST) -> list[Any]:
    """Run the same call on the sync and the async client; return both outcomes."""
    outcomes: list[Any] = []
    with sync_client(handler, retry) as client:
        try:
            outcomes.append(getattr(client, call)(*args))
        except MinioManagerError as exc:
            outcomes.append(exc)

    async def run() -> Any:
        async with async_client(handler, retry) as client:
            try:
                return await getattr(client, call)(*args)
            except MinioManagerError as exc:
                return exc

    outcomes.append(asyncio.run(run()))
    return outcomes


def test_credentials_are_typed_and_the_secret_stays_out_of_repr(sleeps: list[float]) -> None:
    script = Script(httpx.Response(200, json={**CREDS, "new_field": 1}))
    for creds in both(script, "get_credentials"):
        assert creds == Credentials("alice", "alice", SECRET)
        assert SECRET not in repr(creds)
    request = script.requests[0]
    assert request.url.path == "/credentials/"
    assert request.headers["authorization"] == "Bearer tok"
    assert sleeps == []


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, 10020, AuthenticationError),
        (403, 10040, ForbiddenError),
        (404, 20041, NotFoundError),
        (409, 20045, ConflictError),
        (400, 20015, ValidationError),
        (422, 30010, ValidationError),
        (500, 50000, MinioManagerError),
    ],
)
def test_envelope_becomes_the_exception_for_its_status(
    status: int, code: int, cls: type[MinioManagerError], sleeps: list[float]
) -> None:
    script = Script(envelope(status, code, "told you"))
    for exc in both(script, "get_credentials"):
        assert type(exc) is cls
        assert (exc.status, exc.code, exc.error_type) == (status, code, "some_type")
        assert exc.message == "told you"
        assert exc.request_id == "rid-1"
        assert "told you" in str(exc) and str(code) in str(exc)
    assert len(script.requests) == 2  # one per client: nothing here is retried
    assert sleeps == []


def test_503_is_retried_with_backoff_then_succeeds(sleeps: list[float]) -> None:
    script = Script(envelope(503, 20050), envelope(503, 20050), httpx.Response(200, json=CREDS))
    [creds] = both(script, "get_credentials")[:1]
    assert creds.secret_key == SECRET
    assert len(sleeps) == 2
    assert all(0 < d <= FAST.max_delay for d in sleeps)


def test_retries_are_bounded_and_end_in_unavailable(sleeps: list[float]) -> None:
    script = Script(envelope(503, 50020, "database unavailable"))
    for exc in both(script, "get_workspace"):
        assert isinstance(exc, ServiceUnavailableError)
        assert exc.code == 50020
    assert len(script.requests) == 2 * FAST.attempts
    assert len(sleeps) == 2 * (FAST.attempts - 1)


def test_retry_after_is_honoured_up_to_the_cap(sleeps: list[float]) -> None:
    policy = RetryPolicy(attempts=3, base_delay=0.01, max_delay=2.0)
    script = Script(
        httpx.Response(503, headers={"Retry-After": "1"}),
        httpx.Response(503, headers={"Retry-After": "120"}),
        httpx.Response(200, json=CREDS),
    )
    with sync_client(script, policy) as client:
        client.get_credentials()
    assert sleeps == [1.0, 2.0]


def test_a_proxy_page_is_not_an_envelope(sleeps: list[float]) -> None:
    script = Script(httpx.Response(502, text="<html>502 Bad Gateway</html>"))
    for exc in both(script, "get_credentials"):
        assert isinstance(exc, ServiceUnavailableError)
        assert exc.code is None and exc.status == 502


def test_accepted_202_is_a_success_and_is_not_repeated(sleeps: list[float]) -> None:
    pending = {"enforcement": "pending", "pending_principals": ["user:alice"], "message": "m"}
    script = Script(httpx.Response(202, json=pending))
    with sync_client(script) as client:
        assert client.request("DELETE", "/tenants/t1/members/alice") == pending
    assert len(script.requests) == 1 and sleeps == []


def test_connection_errors_are_retried_and_never_echo_the_token(sleeps: list[float]) -> None:
    script = Script(httpx.ConnectError("refused"))
    for exc in both(script, "get_credentials"):
        assert isinstance(exc, ConnectionFailedError)
        assert isinstance(exc, ServiceUnavailableError)
        assert exc.status is None
        assert "tok" not in str(exc)
    assert len(script.requests) == 2 * FAST.attempts


def test_a_post_that_may_have_arrived_is_not_repeated(sleeps: list[float]) -> None:
    script = Script(httpx.ReadTimeout("slow"))
    with sync_client(script) as client, pytest.raises(ConnectionFailedError):
        client.request("POST", "/sharing/share", json={"path": "s3a://b/k"})
    assert len(script.requests) == 1
    # …but a connection never made is safe to retry, whatever the method.
    refused = Script(httpx.ConnectError("refused"), httpx.Response(200, json={"ok": True}))
    with sync_client(refused) as client:
        assert client.request("POST", "/sharing/share", json={}) == {"ok": True}
    # Rotation is retried like a read: a repeated rotation still ends with one working pair.
    rotate = Script(httpx.ReadTimeout("slow"), httpx.Response(200, json=CREDS))
    with sync_client(rotate) as client:
        assert client.rotate_credentials().secret_key == SECRET
    assert [r.method for r in rotate.requests] == ["POST", "POST"]


def test_workspace_calls_hit_their_routes_and_parse(sleeps: list[float]) -> None:
    policy = {
        "policy_name": "user-home-policy-alice",
        "policy_document": {
            "version": "2012-10-17",
            "statement": [{"effect": "Allow", "action": "s3:GetObject", "resource": ["a", "b"]}],
        },
    }
    bodies: dict[str, Any] = {
        "/workspaces/me": {
            "username": "alice",
            "access_key": "alice",
            "secret_key": "<redacted>",
            "home_paths": ["s3a://cdm-lake/users-general-warehouse/alice/", "s3a://x/"],
            "groups": ["globalusers"],
            "user_policies": [policy],
            "group_policies": [],
            "total_policies": 1,
            "accessible_paths": ["s3a://x/"],
        },
        "/workspaces/me/groups": {"username": "alice", "groups": ["g1"], "group_count": 1},
        "/workspaces/me/policies": {
            "username": "alice",
            "user_home_policy": policy,
            "user_system_policy": policy,
            "group_policies": [policy],
            "total_policies": 3,
        },
        "/workspaces/me/accessible-paths": {
            "username": "alice",
            "accessible_paths": ["s3a://x/"],
            "total_paths": 1,
        },
        "/workspaces/me/groups/a%2Fb": {
            "group_name": "a/b",
            "members": ["alice"],
            "member_count": 1,
            "accessible_paths": [],
        },
        "/workspaces/me/groups/g1/sql-warehouse-prefix": {
            "group_name": "g1",
            "sql_warehouse_prefix": "s3a://cdm-lake/tenant-sql-warehouse/g1/",
        },
        "/workspaces/me/sql-warehouse-prefix": {
            "username": "alice",
            "sql_warehouse_prefix": "s3a://cdm-lake/users-sql-warehouse/alice/",
        },
        "/workspaces/me/namespace-prefix": {
            "username": "alice",
            "user_namespace_prefix": "u_alice__",
            "tenant": "g1",
            "tenant_namespace_prefix": "g1_",
        },
    }
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode().split("?")[0]
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json=bodies[path])

    with sync_client(handler) as client:
        ws = client.get_workspace()
        assert ws.general_home.endswith("/alice/") and ws.sql_warehouse == "s3a://x/"
        assert ws.user_policies[0].statements[0].action == ("s3:GetObject",)
        assert client.get_groups().groups == ("g1",)
        assert client.get_policies().total_policies == 3
        assert client.get_accessible_paths().total_paths == 1
        assert client.get_group_workspace("a/b").members == ("alice",)
        assert client.get_group_sql_warehouse_prefix("g1").owner == "g1"
        assert client.get_sql_warehouse_prefix().owner == "alice"
        ns = client.get_namespace_prefix(tenant="g1")
        assert (ns.user_namespace_prefix, ns.tenant_namespace_prefix) == ("u_alice__", "g1_")
    assert "/workspaces/me/namespace-prefix?tenant=g1" in seen
    assert "/workspaces/me/groups/a%2Fb" in seen  # a name cannot add path segments


def test_malformed_success_body_is_an_error_not_a_crash(sleeps: list[float]) -> None:
    script = Script(httpx.Response(200, json={"username": "alice"}))
    for exc in both(script, "get_credentials"):
        assert isinstance(exc, MinioManagerError)
        assert "access_key" in str(exc)


def test_arguments_are_checked_up_front() -> None:
    with pytest.raises(ValueError):
        MinioManagerClient("mms.test", "tok")
    with pytest.raises(ValueError):
        MinioManagerClient(URL, "tok\r\nX-Evil: 1")
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    client = MinioManagerClient(URL + "/prefix/", "tok", timeout=7)
    assert client.base_url == URL + "/prefix"
    assert client._http.timeout.read == 7 and client._http.timeout.connect == 5
    client.close()


def test_request_sends_json_and_params(sleeps: list[float]) -> None:
    script = Script(httpx.Response(201, json={"group_name": "g1"}))
    with sync_client(script) as client:
        body = client.request("POST", "/management/groups/g1", params={"x": "1"}, json={"a": 1})
    assert body == {"group_name": "g1"}
    request = script.requests[0]
    assert request.url.params["x"] == "1" and json.loads(request.content) == {"a": 1}
