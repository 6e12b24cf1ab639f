"""Response bodies of /credentials."""

from __future__ import annotations

from pydantic import BaseModel


class CredentialsResponse(BaseModel):
    username: str
    access_key: str
    secret_key: str
