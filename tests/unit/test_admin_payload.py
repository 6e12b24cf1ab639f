"""madmin payload encryption (PBKDF2 + AES-GCM variant): layout and a full decryption."""

from __future__ import annotations

import hashlib

import pytest
from Crypto.Cipher import AES

from minio_manager.objectstore.signing import (
    PBKDF2_AES_GCM,
    PBKDF2_ROUNDS,
    encrypt_payload_fast,
)


def _decrypt(data: bytes, password: str) -> bytes:
    """An independent reader of the format, chunk by chunk, checking every tag."""
    salt, algorithm, nonce, body = data[:32], data[32], data[33:41], data[41:]
    assert algorithm == PBKDF2_AES_GCM
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PBKDF2_ROUNDS, 32)
    header_tag = AES.new(key, AES.MODE_GCM, nonce=nonce + bytes(4)).digest()
    sealed_chunk = 16 * 1024 + 16
    pieces = [body[i : i + sealed_chunk] for i in range(0, len(body), sealed_chunk)]
    plain = b""
    for index, piece in enumerate(pieces, start=1):
        flag = b"\x80" if index == len(pieces) else b"\x00"
        cipher = AES.new(key, AES.MODE_GCM, nonce=nonce + index.to_bytes(4, "little"))
        cipher.update(flag + header_tag)
        plain += cipher.decrypt_and_verify(piece[:-16], piece[-16:])
    return plain


@pytest.mark.parametrize("size", [0, 17, 16 * 1024, 16 * 1024 + 1, 40_000])
def test_round_trip(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    sealed = encrypt_payload_fast(payload, "root-secret")
    chunks = max(1, -(-size // (16 * 1024)))
    assert len(sealed) == 41 + size + 16 * chunks
    assert _decrypt(sealed, "root-secret") == payload


def test_wrong_password_fails_and_salts_differ() -> None:
    sealed = encrypt_payload_fast(b'{"secretKey": "abc"}', "right")
    with pytest.raises(ValueError):
        _decrypt(sealed, "wrong")
    assert sealed[:32] != encrypt_payload_fast(b'{"secretKey": "abc"}', "right")[:32]
