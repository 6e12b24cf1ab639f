"""AWS Signature V4 and MinIO's admin payload encryption.

Requests are signed here (SigV4, as AWS documents it) and request bodies are sealed here
(madmin's PBKDF2 variant, below). Only opening a sealed *answer* uses the ``minio`` SDK's
reader, imported when first needed: the SDK's package pulls in its blocking client and
urllib3 (~8 MiB of RSS), and the service opens such answers only when asked to list every
store user (docs/decisions.md, "Memory: the service's baseline").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import os
from urllib.parse import quote, urlsplit

from Crypto.Cipher import AES

REGION = "us-east-1"
SERVICE = "s3"
ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_HEADERS = frozenset({"authorization", "user-agent"})


def queryencode(value: str) -> str:
    """Percent-encode everything but the unreserved characters (``A-Za-z0-9-_.~``)."""
    return quote(value, safe="~")


def canonical_query(params: dict[str, str] | None) -> str:
    """Query string in the sorted, encoded form that both the signer and the wire use."""
    if not params:
        return ""
    return "&".join(f"{queryencode(k)}={queryencode(v)}" for k, v in sorted(params.items()))


def encode_path(path: str) -> str:
    return quote(path, safe="/~")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, day: str, region: str = REGION) -> bytes:
    """The per-day key: HMAC chain over date, region, service and ``aws4_request``."""
    key = _hmac(f"AWS4{secret_key}".encode(), day)
    for part in (region, SERVICE, "aws4_request"):
        key = _hmac(key, part)
    return key


def authorization(
    *,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    content_sha256: str,
    access_key: str,
    secret_key: str,
    amz_date: str,
) -> str:
    """The ``Authorization`` value for a request whose (already encoded) ``path`` and
    ``query`` are sent as given, with every header in ``headers`` signed."""
    canonical = {
        name.lower(): " ".join(str(value).split())
        for name, value in headers.items()
        if name.lower() not in UNSIGNED_HEADERS
    }
    names = sorted(canonical)
    signed = ";".join(names)
    request = "\n".join(
        [
            method,
            path or "/",
            query,
            "".join(f"{n}:{canonical[n]}\n" for n in names),
            signed,
            content_sha256,
        ]
    )
    scope = f"{amz_date[:8]}/{REGION}/{SERVICE}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, sha256_hex(request.encode())])
    signature = hmac.new(
        signing_key(secret_key, amz_date[:8]), to_sign.encode(), hashlib.sha256
    ).hexdigest()
    return (
        f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed},"
        f" Signature={signature}"
    )


def signed_headers(
    *,
    method: str,
    url: str,
    body: bytes,
    access_key: str,
    secret_key: str,
    extra: dict[str, str] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """Headers (including Authorization) for one request to ``url`` (path and query
    already encoded, as sent)."""
    parts = urlsplit(url)
    content_sha256 = sha256_hex(body)
    amz_date = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    headers: dict[str, str] = {
        "Host": parts.netloc,
        "x-amz-date": amz_date,
        "x-amz-content-sha256": content_sha256,
    }
    if extra:
        headers.update(extra)
    headers["Authorization"] = authorization(
        method=method,
        path=parts.path,
        query=parts.query,
        headers=headers,
        content_sha256=content_sha256,
        access_key=access_key,
        secret_key=secret_key,
        amz_date=amz_date,
    )
    return headers


# madmin's payload format: salt(32) | algorithm id(1) | nonce(8) | sealed 16 KiB chunks.
# Algorithm 0x02 is MinIO's FIPS variant: PBKDF2-HMAC-SHA256 (8192 rounds) + AES-256-GCM.
# Every MinIO server decrypts it, and it costs ~1 ms instead of Argon2id's 64 MiB on both
# ends, which is what a login storm of new users pays for in `add-user`.
PBKDF2_AES_GCM = 0x02
PBKDF2_ROUNDS = 8192
_CHUNK = 16 * 1024


def encrypt_payload_fast(payload: bytes, secret_key: str) -> bytes:
    """madmin encryption with the PBKDF2 variant (see above)."""
    salt, nonce = os.urandom(32), os.urandom(8)
    key = hashlib.pbkdf2_hmac("sha256", secret_key.encode(), salt, PBKDF2_ROUNDS, 32)
    # The stream's associated data: a flag byte (0x80 on the final chunk) and the tag of an
    # empty message sealed under the header nonce.
    header_tag = AES.new(key, AES.MODE_GCM, nonce=nonce + bytes(4)).digest()
    chunks = [payload[i : i + _CHUNK] for i in range(0, len(payload), _CHUNK)] or [b""]
    out = bytearray(salt + bytes([PBKDF2_AES_GCM]) + nonce)
    for index, chunk in enumerate(chunks, start=1):
        flag = b"\x80" if index == len(chunks) else b"\x00"
        cipher = AES.new(key, AES.MODE_GCM, nonce=nonce + index.to_bytes(4, "little"))
        cipher.update(flag + header_tag)
        sealed, tag = cipher.encrypt_and_digest(chunk)
        out += sealed + tag
    return bytes(out)


class _BufferedResponse:
    """The little of urllib3's response API that the SDK's DecryptReader uses."""

    def __init__(self, data: bytes) -> None:
        self._buffer = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._buffer.read(size)

    def close(self) -> None:
        self._buffer.close()

    def release_conn(self) -> None:
        """Nothing to release: the body was read by the async client already."""


def decrypt_payload(data: bytes, secret_key: str) -> bytes:
    """Open an encrypted admin response (MinIO seals them with Argon2id: CPU-bound)."""
    from minio.crypto import DecryptReader

    out = bytearray()
    with DecryptReader(_BufferedResponse(data), secret_key.encode()) as reader:  # type: ignore[arg-type]
        for chunk in reader.stream():
            out += chunk
    return bytes(out)
