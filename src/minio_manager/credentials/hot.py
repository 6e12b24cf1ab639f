"""The hot path's read of a cached pair: one prepared statement on the plain asyncpg pool.

``GET /credentials/`` for a known user is one primary-key lookup with ``pgp_sym_decrypt``,
sent through ``db/fast.py`` (why, and how its errors are answered, is said there) — the
identical SQL (same table, same decryption inside PostgreSQL, key as a bound parameter). A
miss (first login) or a *pending* pair (an interrupted rotation) falls through to
``CredentialService.get_or_issue``, which decides under the user's lock.
"""

from __future__ import annotations

from minio_manager.config import Settings
from minio_manager.credentials.store import StoredCredentials
from minio_manager.db.fast import FastReader

SELECT = (
    "SELECT access_key, pgp_sym_decrypt(secret_key, $1) AS secret, version, pending "
    "FROM user_credentials WHERE username = $2"
)


class HotCredentialReader:
    """Cached pair of a user, or None."""

    def __init__(self, settings: Settings, reader: FastReader) -> None:
        self._key = settings.mms_db_encryption_key.get_secret_value()
        self._reader = reader

    async def fetch(self, user: str) -> StoredCredentials | None:
        row = await self._reader.fetchrow(SELECT, self._key, user)
        if row is None or row["pending"]:
            return None  # missing or pending: ``get_or_issue`` settles it under the lock
        return StoredCredentials(user, row["access_key"], row["secret"], row["version"], False)

    async def close(self) -> None:
        await self._reader.close()
