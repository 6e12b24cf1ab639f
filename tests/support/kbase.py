"""The KBase auth stand-in, started in-process, with helpers to mint users and tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx
from scripts.kbase_stub import KBaseStubServer, start_stub, stop_stub

USER_ROLE = "BERDL_USER"
ADMIN_ROLE = "KBASE_ADMIN"


@dataclass(frozen=True)
class TestUser:
    __test__ = False  # not a pytest test class

    name: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class KBase:
    def __init__(self) -> None:
        self.server: KBaseStubServer
        self.server, self.url = start_stub("127.0.0.1", 0, {"users": []})

    def close(self) -> None:
        stop_stub(self.server)

    def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.post(self.url + path.lstrip("/"), json=body or {}, timeout=10)
        response.raise_for_status()
        return response.json()

    def add_user(
        self,
        name: str | None = None,
        *,
        roles: tuple[str, ...] = (USER_ROLE,),
        admin: bool = False,
        email: str | None = None,
        display: str | None = None,
        expires_in_ms: int = 3_600_000,
        cachefor_ms: int = 300_000,
    ) -> TestUser:
        name = name or f"u{secrets.token_hex(5)}"
        token = f"tok-{name}-{secrets.token_hex(8)}"
        custom = [*roles, ADMIN_ROLE] if admin else list(roles)
        self._post(
            "_stub/users",
            {
                "user": name,
                "display": display or f"Display {name}",
                "email": email or f"{name}@example.org",
                "customroles": custom,
                "tokens": [
                    {"token": token, "expires_in_ms": expires_in_ms, "cachefor_ms": cachefor_ms}
                ],
            },
        )
        return TestUser(name, token)

    def disable(self, name: str) -> None:
        self._post(f"_stub/users/{name}/disable")

    def expire(self, token: str) -> None:
        self._post(f"_stub/tokens/{token}/expire")

    def mode(self, mode: str, delay_s: float = 1.0) -> None:
        self._post("_stub/mode", {"mode": mode, "delay_s": delay_s})

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = httpx.get(self.url + "_stub/stats", timeout=10).json()
        return result
