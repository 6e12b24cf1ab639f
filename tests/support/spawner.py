"""A stand-in for the three attributes of a JupyterHub Spawner that the spawn hook touches."""

from __future__ import annotations

import logging
from typing import Any


class FakeUser:
    def __init__(self, auth_state: dict[str, Any] | None) -> None:
        self.name = "alice"
        self._auth_state = auth_state

    async def get_auth_state(self) -> dict[str, Any] | None:
        return self._auth_state


class FakeSpawner:
    """The three attributes of a JupyterHub Spawner that the hook touches."""

    def __init__(
        self, auth_state: dict[str, Any] | None, environment: dict[str, str] | None = None
    ):
        self.user = FakeUser(auth_state)
        self.log = logging.getLogger("fake-hub")
        self.environment: dict[str, str] = dict(environment or {})
