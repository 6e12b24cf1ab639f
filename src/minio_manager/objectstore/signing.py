"""AWS Signature V4 and MinIO's admin payload encryption.

The ``minio`` SDK's own admin client is blocking; we keep its SigV4 signer and its reader of
encrypted admin responses, seal request bodies ourselves (madmin's PBKDF2 variant, below),
and drive the HTTP with a pooled async client.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
from urllib.parse import SplitResult, urlsplit

from Crypto.Cipher import AES
from minio.credentials.credentials import Credentials
from minio.crypto import DecryptReader
from minio.helpers import queryencode, quote, sha256_hash
from minio.signer import sign_v4_s3
from minio.time import to_amz_date

REGION = "us-east-1"


def canonical_query(params: dict[str, str] | None) -> str:
    """Query string in the sorted, encoded form that both the signer and the wire use."""
    if not params:
        return ""
    return "&".join(f"{queryencode(k)}={queryencode(v)}" for k, v in sorted(params.items()))


def encode_path(path: str) -> str:
    return str(quote(path))


def signed_headers(
    *,
    method: str,
    url: str,
    body: bytes,
    access_key: str,
    secret_key: str,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Headers (including Authorization) for one request to ``url``."""
    parts: SplitResult = urlsplit(url)
    content_sha256 = sha256_hash(body)
    date = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    headers: dict[str, str] = {
        "Host": parts.netloc,
        "x-amz-date": to_amz_date(date),
        "x-amz-content-sha256": content_sha256,
    }
    if extra:
        headers.update(extra)
    signed = sign_v4_s3(
        method=method,
        url=parts,
        region=REGION,
        headers=headers,  # type: ignore[arg-type]
        credentials=Credentials(access_key, secret_key),
        content_sha256=content_sha256,
        date=date,
    )
    return {k: str(v) for k, v in signed.items()}


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
    out = bytearray()
    with DecryptReader(_BufferedResponse(data), secret_key.encode()) as reader:  # type: ignore[arg-type]
        for chunk in reader.stream():
            out += chunk
    return bytes(out)
