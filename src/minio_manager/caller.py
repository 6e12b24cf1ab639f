"""Who is calling: shared by the auth dependencies and the services, so it imports nothing of
ours (the arrows stay one-way: routes and services both point here, never back)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    username: str
    is_admin: bool
    token: str

    def __repr__(self) -> str:
        return f"Caller(username={self.username!r}, is_admin={self.is_admin})"
