"""Structured logs: request and governance lines with the request id, and no secret, ever.

The service runs as a real process at DEBUG level, once per ``LOG_FORMAT``, through a flow
that issues, rotates and shares credentials and has an admin create and rotate a user.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.kbase import KBase
from tests.support.processes import service_process
from tests.support.stack import store_var

pytestmark = pytest.mark.integration


def run_flow(url: str, kbase: KBase, request_id: str) -> tuple[list[str], list[str], str]:
    """Returns (secrets the service handled, tokens used, the name of the admin)."""
    owner, reader, admin = kbase.add_user(), kbase.add_user(), kbase.add_user(admin=True)
    secrets: list[str] = []
    with httpx.Client(base_url=url, timeout=120) as http:
        for who in (owner, reader):
            response = http.get("/credentials/", headers=who.headers)
            assert response.status_code == 200, response.text
            secrets.append(response.json()["secret_key"])
        rotated = http.post(
            "/credentials/rotate", headers={**owner.headers, "X-Request-ID": request_id}
        )
        assert rotated.status_code == 200, rotated.text
        secrets.append(rotated.json()["secret_key"])
        shared = http.post(
            "/sharing/share",
            headers=owner.headers,
            json={
                "path": f"s3a://cdm-lake/users-general-warehouse/{owner.name}/data/x/",
                "with_users": [reader.name],
                "with_groups": [],
                "permission": "read",
            },
        )
        assert shared.status_code == 200, shared.text
        newcomer = f"u{uuid.uuid4().hex[:10]}"
        for path in (
            f"/management/users/{newcomer}",
            f"/management/users/{newcomer}/rotate-credentials",
        ):
            response = http.post(path, headers=admin.headers)
            assert response.status_code in (200, 201), response.text
            secrets.append(response.json()["secret_key"])
        audit = http.get(
            "/management/audit",
            headers=admin.headers,
            params={"actor": owner.name, "action": "credentials.rotate"},
        )
        assert [e["request_id"] for e in audit.json()["entries"]] == [request_id]
    return secrets, [owner.token, reader.token, admin.token], owner.name


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_no_secret_reaches_the_log_and_every_line_of_a_request_has_its_id(
    app: object, service_env: dict[str, str], kbase: KBase, tmp_path: Path, log_format: str
) -> None:
    log_path = tmp_path / f"service-{log_format}.log"
    env = {**service_env, "LOG_LEVEL": "DEBUG", "LOG_FORMAT": log_format}
    request_id = f"req-{uuid.uuid4().hex}"
    with service_process(env, log_path) as url:
        issued, tokens, owner = run_flow(url, kbase, request_id)
    text = log_path.read_text()

    configured = [
        store_var(service_env, "OBJECT_STORE_SECRET_KEY"),
        service_env["MMS_DB_PASSWORD"],
        service_env["MMS_DB_ENCRYPTION_KEY"],
    ]
    for secret in (*issued, *configured, *tokens):
        assert secret not in text
    assert "DEBUG" in text  # the level really was DEBUG

    if log_format == "json":
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        mine = [line for line in lines if line["request_id"] == request_id]
        request_line = next(line for line in mine if line.get("event") == "request")
        assert request_line["route"] == "/credentials/rotate"
        assert request_line["status"] == 200
        assert request_line["user"] == owner
        assert request_line["level"] == "INFO"
        assert {"time", "duration_ms", "method"} <= request_line.keys()
        audit_line = next(line for line in mine if line.get("event") == "audit")
        assert audit_line["action"] == "credentials.rotate"
        assert audit_line["target"] == owner
    else:
        mine = [line for line in text.splitlines() if f"request_id={request_id}" in line]
        assert any("/credentials/rotate 200" in line and f"user={owner}" in line for line in mine)
        assert any("action=credentials.rotate" in line for line in mine)
