"""Secret generation: 40 characters from a CSPRNG."""

from __future__ import annotations

import secrets
import string

SECRET_LENGTH = 40
_ALPHABET = string.ascii_letters + string.digits


def new_secret() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))
