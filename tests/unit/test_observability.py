"""Pure pieces of observability and the CLI: labels, formatters, tables, exit codes."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest

from minio_manager.observability.instrument import kbase_operation, object_store_operation
from minio_manager.observability.logging import ContextFilter, JsonFormatter, TextFormatter
from minio_manager.observability.metrics import lock_kind
from minio_manager.request_context import (
    RequestInfo,
    request_id_var,
    request_info_var,
    set_current_user,
)
from minio_manager_cli import client
from minio_manager_cli.output import spinner, table


@pytest.mark.parametrize(
    ("method", "url", "operation"),
    [
        ("PUT", "http://m:9000/minio/admin/v3/add-user?accessKey=alice", "admin:add-user"),
        ("GET", "http://m:9000/minio/health/live", "health"),
        ("PUT", "http://m:9000/cdm-lake/users-general-warehouse/alice/x", "s3:PUT"),
    ],
)
def test_object_store_operations_never_carry_names(method: str, url: str, operation: str) -> None:
    assert object_store_operation(httpx.Request(method, url)) == operation


@pytest.mark.parametrize(
    ("path", "operation"),
    [("api/V2/me", "me"), ("api/V2/token", "token"), ("api/V2/users/", "users"), ("", "service")],
)
def test_kbase_operations(path: str, operation: str) -> None:
    request = httpx.Request("GET", "https://ci.kbase.us/services/auth/" + path)
    assert kbase_operation(request) == operation


def test_lock_kind_drops_the_principal() -> None:
    assert lock_kind("credential_lock:alice") == "credential_lock"
    assert lock_kind("policy_lock:user:alice") == "policy_lock"


def record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord(
        "minio_manager.request", logging.INFO, __file__, 1, "GET %s", ("/x",), None
    )
    for key, value in extra.items():
        setattr(rec, key, value)
    ContextFilter().filter(rec)
    return rec


def test_formatters_carry_the_request_id_user_and_fields() -> None:
    rid, info = request_id_var.set("req-1"), request_info_var.set(RequestInfo())
    try:
        set_current_user("alice")
        rec = record(route="/x", status=200, duration_ms=1.5, ignored="no")
    finally:
        request_id_var.reset(rid)
        request_info_var.reset(info)
    line = json.loads(JsonFormatter().format(rec))
    assert line["request_id"] == "req-1" and line["user"] == "alice"
    assert line["message"] == "GET /x" and line["status"] == 200 and "ignored" not in line
    text = TextFormatter().format(rec)
    assert "GET /x request_id=req-1 user=alice route=/x status=200 duration_ms=1.5" in text


def test_outside_a_request_the_context_fields_are_empty() -> None:
    line = json.loads(JsonFormatter().format(record()))
    assert line["request_id"] is None and line["user"] is None


def test_table_aligns_columns_and_shows_lists() -> None:
    out = io.StringIO()
    table(
        [{"name": "a", "groups": ["g1", "g2"]}, {"name": "long", "groups": []}],
        ["name", "groups"],
        out,
    )
    assert out.getvalue().splitlines() == ["NAME  GROUPS", "a     g1,g2", "long  -"]


def test_spinner_is_silent_off_a_terminal() -> None:
    stream = io.StringIO()
    with spinner("working", stream):
        pass
    assert stream.getvalue() == ""


@pytest.mark.parametrize(
    ("status", "code"),
    [(401, 2), (403, 2), (404, 3), (409, 4), (422, 4), (207, 4), (503, 5), (502, 5), (500, 6)],
)
def test_exit_codes(status: int, code: int) -> None:
    assert client.exit_code_for(status) == code
