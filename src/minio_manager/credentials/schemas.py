"""Response bodies of /credentials."""

from __future__ import annotations

from pydantic import BaseModel, computed_field


class S3KeyAliases(BaseModel):
    """``s3_access_key`` / ``s3_secret_key`` beside ``access_key`` / ``secret_key``.

    Clients written for either era of the reference service read one pair or the other; both
    carry the same values, so either kind works unchanged.
    """

    username: str
    access_key: str
    secret_key: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def s3_access_key(self) -> str:
        return self.access_key

    @computed_field  # type: ignore[prop-decorator]
    @property
    def s3_secret_key(self) -> str:
        return self.secret_key

    def __repr__(self) -> str:
        return f"{type(self).__name__}(access_key={self.access_key!r}, secret_key=<redacted>)"


class CredentialsResponse(S3KeyAliases):
    """``{username, access_key, secret_key, s3_access_key, s3_secret_key}``."""
