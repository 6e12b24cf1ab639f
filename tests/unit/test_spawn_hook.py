"""The JupyterHub pre-spawn hook against a stand-in spawner and a mock service.

What JupyterHub itself does with the hook (order, the spawn page, the single-user process) is
checked with the real programs in ``e2e/``; here: which variables are set, what a failure tells
the user, and that neither the token nor the secret reaches a log line.
"""

from __future__ import annotations

import logging
import shlex
from typing import Any

import httpx
import pytest
from tornado.web import HTTPError

from minio_manager_client import Credentials, RetryPolicy, Workspace
from minio_manager_client.jupyterhub import (
    make_pre_spawn_hook,
    pyspark_submit_args,
    spawn_environment,
)
from tests.support.spawner import FakeSpawner

SECRET = "S" * 40
TOKEN = "kbase-token-1234"
ENDPOINT = "http://127.0.0.1:9002"
CREDS = {"username": "alice", "access_key": "alice", "secret_key": SECRET}
WORKSPACE = {
    "username": "alice",
    "access_key": "alice",
    "secret_key": "<redacted>",
    "home_paths": [
        "s3a://cdm-lake/users-general-warehouse/alice/",
        "s3a://cdm-lake/users-sql-warehouse/alice/",
    ],
    "groups": [],
    "user_policies": [],
    "group_policies": [],
    "total_policies": 0,
    "accessible_paths": [],
}
FAST = RetryPolicy(attempts=2, base_delay=0.0, max_delay=0.0)


def service(answers: dict[str, httpx.Response]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[request.url.path]
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    return httpx.MockTransport(handler), seen


def ok_service() -> tuple[httpx.MockTransport, list[httpx.Request]]:
    return service(
        {
            "/credentials/": httpx.Response(200, json=CREDS),
            "/workspaces/me": httpx.Response(200, json=WORKSPACE),
        }
    )


def envelope(status: int, code: int, message: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={"error": code, "error_type": "t", "message": message},
        headers={"X-Request-ID": "rid-7"},
    )


async def test_hook_sets_keys_endpoint_homes_and_spark_settings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport, seen = ok_service()
    hook = make_pre_spawn_hook(
        "http://mms.test", ENDPOINT, transport=transport, spark_conf={"spark.master": "local[2]"}
    )
    spawner = FakeSpawner({"kbase_token": TOKEN}, {"KEEP": "me"})
    with caplog.at_level(logging.DEBUG):
        await hook(spawner)

    env = spawner.environment
    assert env["KEEP"] == "me"
    assert env["AWS_ACCESS_KEY_ID"] == env["MINIO_ACCESS_KEY"] == "alice"
    assert env["AWS_SECRET_ACCESS_KEY"] == env["MINIO_SECRET_KEY"] == SECRET
    assert env["AWS_ENDPOINT_URL"] == env["MINIO_ENDPOINT_URL"] == ENDPOINT
    assert (env["MINIO_ENDPOINT"], env["MINIO_SECURE"]) == ("127.0.0.1:9002", "false")
    assert env["MMS_USER_HOME"] == WORKSPACE["home_paths"][0]
    assert env["MMS_USER_SQL_WAREHOUSE"] == WORKSPACE["home_paths"][1]

    args = shlex.split(env["PYSPARK_SUBMIT_ARGS"])
    assert args[-1] == "pyspark-shell"
    conf = dict(a.split("=", 1) for a in args[1:-1:2])
    assert conf["spark.hadoop.fs.s3a.endpoint"] == ENDPOINT
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.sql.warehouse.dir"] == WORKSPACE["home_paths"][1]
    assert conf["spark.master"] == "local[2]"
    # The secret is for the environment only: never in spark-submit's command line, never logged.
    assert SECRET not in env["PYSPARK_SUBMIT_ARGS"]
    assert SECRET not in caplog.text and TOKEN not in caplog.text
    assert "alice" in caplog.text

    assert [r.url.path for r in seen] == ["/credentials/", "/workspaces/me"]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in seen)


async def test_token_key_is_configurable() -> None:
    transport, _ = ok_service()
    hook = make_pre_spawn_hook("http://mms.test", ENDPOINT, token_key="tok", transport=transport)
    spawner = FakeSpawner({"tok": TOKEN})
    await hook(spawner)
    assert spawner.environment["AWS_ACCESS_KEY_ID"] == "alice"


@pytest.mark.parametrize("auth_state", [None, {}, {"kbase_token": ""}, {"kbase_token": 5}])
async def test_no_token_tells_the_user_to_log_in_again(auth_state: Any) -> None:
    transport, seen = ok_service()
    hook = make_pre_spawn_hook("http://mms.test", ENDPOINT, transport=transport)
    with pytest.raises(HTTPError) as caught:
        await hook(FakeSpawner(auth_state))
    assert caught.value.status_code == 403
    assert "log in again" in caught.value.log_message
    assert seen == []


@pytest.mark.parametrize(
    ("answer", "status", "words"),
    [
        (envelope(401, 10020, "Invalid token"), 403, "log in again"),
        (envelope(403, 10040, "missing role BERDL_USER"), 403, "missing role BERDL_USER"),
        (envelope(503, 50010, "auth service down"), 503, "try starting your server again"),
        (httpx.Response(502, text="<html>bad gateway</html>"), 503, "unavailable"),
        (envelope(409, 20045, "credential lock busy"), 500, "credential lock busy"),
    ],
)
async def test_service_failures_become_clear_spawn_errors(
    answer: httpx.Response, status: int, words: str, caplog: pytest.LogCaptureFixture
) -> None:
    transport, _ = service({"/credentials/": answer})
    hook = make_pre_spawn_hook("http://mms.test", ENDPOINT, transport=transport, retry=FAST)
    spawner = FakeSpawner({"kbase_token": TOKEN})
    with caplog.at_level(logging.DEBUG), pytest.raises(HTTPError) as caught:
        await hook(spawner)
    error = caught.value
    assert error.status_code == status
    assert words in error.log_message
    assert error.jupyterhub_message == error.log_message.replace("%%", "%")  # type: ignore[attr-defined]
    assert "AWS_SECRET_ACCESS_KEY" not in spawner.environment
    assert TOKEN not in caplog.text and TOKEN not in error.log_message


async def test_unreachable_service_is_a_clear_503() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    hook = make_pre_spawn_hook(
        "http://mms.test", ENDPOINT, transport=httpx.MockTransport(refuse), retry=FAST
    )
    with pytest.raises(HTTPError) as caught:
        await hook(FakeSpawner({"kbase_token": TOKEN}))
    assert caught.value.status_code == 503


async def test_a_token_with_a_line_break_is_refused_without_echo() -> None:
    transport, seen = ok_service()
    hook = make_pre_spawn_hook("http://mms.test", ENDPOINT, transport=transport)
    with pytest.raises(HTTPError) as caught:
        await hook(FakeSpawner({"kbase_token": "abc\r\ndef"}))
    assert caught.value.status_code == 403 and "abc" not in caught.value.log_message
    assert seen == []


def test_existing_submit_args_are_kept_after_ours() -> None:
    joined = pyspark_submit_args({"a": "1"}, "--conf a=2 --packages x:y:1 pyspark-shell")
    assert shlex.split(joined) == [
        "--conf",
        "a=1",
        "--conf",
        "a=2",
        "--packages",
        "x:y:1",
        "pyspark-shell",
    ]


def test_https_endpoint_turns_ssl_on() -> None:
    env = spawn_environment(
        Credentials("bob", "bob", SECRET),
        Workspace.from_json({**WORKSPACE, "username": "bob", "access_key": "bob"}),
        endpoint="https://minio.example.org/",
    )
    assert "spark.hadoop.fs.s3a.connection.ssl.enabled=true" in env["PYSPARK_SUBMIT_ARGS"]
    assert env["MINIO_SECURE"] == "true" and env["MINIO_ENDPOINT"] == "minio.example.org"
    assert env["AWS_ENDPOINT_URL"] == "https://minio.example.org"
    with pytest.raises(ValueError):
        make_pre_spawn_hook("http://mms.test", "minio:9000")
