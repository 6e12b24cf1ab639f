"""The service's own SigV4 signer gives the signatures the ``minio`` SDK's signer gives (which
it replaced; every admin and S3 call of the integration tests is signed by it too)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from minio.credentials.credentials import Credentials
from minio.signer import sign_v4_s3

from minio_manager.objectstore.signing import canonical_query, encode_path, signed_headers

WHEN = dt.datetime(2026, 12, 2, 13, 45, 7, tzinfo=dt.UTC)
BASE = "http://127.0.0.1:9002"


def _reference(method: str, url: str, headers: dict[str, str], secret: str) -> str:
    signed = sign_v4_s3(
        method=method,
        url=urlsplit(url),
        region="us-east-1",
        headers=dict(headers),  # type: ignore[arg-type]
        credentials=Credentials("AKIDEXAMPLE", secret),
        content_sha256=headers["x-amz-content-sha256"],
        date=WHEN.replace(tzinfo=None),
    )
    return str(signed["Authorization"])


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "extra"),
    [
        ("GET", "/minio/admin/v3/user-info", {"accessKey": "alice"}, b"", None),
        ("PUT", "/minio/admin/v3/add-user", {"accessKey": "a.b-c_d"}, b"\x00sealed", None),
        ("GET", "/minio/admin/v3/list-users", None, b"", None),
        ("PUT", "/cdm-lake/users-general-warehouse/alice/a b+c~d/ü.txt", None, b"x" * 70, None),
        ("GET", "/cdm-lake", {"list-type": "2", "prefix": "a/b c/", "delimiter": "/"}, b"", None),
        ("POST", "/cdm-lake", {"delete": ""}, b"<Delete/>", {"Content-MD5": "  abc   def  "}),
        (
            "PUT",
            "/minio/admin/v3/set-user-or-group-policy",
            {"policyName": "p1,p2", "userOrGroup": "g", "isGroup": "true"},
            b"",
            None,
        ),
    ],
)
def test_same_signature_as_the_sdk(
    method: str, path: str, params: dict[str, str] | None, body: bytes, extra: dict[str, str] | None
) -> None:
    query = canonical_query(params)
    url = f"{BASE}{encode_path(path)}" + (f"?{query}" if query else "")
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    ours = signed_headers(
        method=method,
        url=url,
        body=body,
        access_key="AKIDEXAMPLE",
        secret_key=secret,
        extra=extra,
        now=WHEN,
    )
    assert ours["x-amz-date"] == "20261202T134507Z"
    assert ours["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/us-east-1/s3/aws4_request, "
    )
    unsigned = {k: v for k, v in ours.items() if k != "Authorization"}
    assert ours["Authorization"] == _reference(method, url, unsigned, secret)
    # A different secret or a different body gives another signature.
    other = signed_headers(
        method=method,
        url=url,
        body=body + b"!",
        access_key="AKIDEXAMPLE",
        secret_key=secret,
        extra=extra,
        now=WHEN,
    )
    assert other["Authorization"] != ours["Authorization"]


def test_encoding_keeps_only_unreserved_characters() -> None:
    assert encode_path("/b/a b/ü~x+y") == "/b/a%20b/%C3%BC~x%2By"
    assert canonical_query({"b": "x/y z", "a": "1~2"}) == "a=1~2&b=x%2Fy%20z"


def test_the_service_does_not_load_the_minio_sdk() -> None:
    """The SDK is ~8 MiB of RSS; only opening a sealed answer (``list-users``) imports it."""
    code = (
        "import sys, minio_manager.main, minio_manager.objectstore.minio; "
        "print('minio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
