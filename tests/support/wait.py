"""Polling for eventual outcomes (the reconciler works in the background): a generous
deadline, never an assertion about how long something took."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

DEADLINE_SECONDS = 30.0


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], *, deadline: float = DEADLINE_SECONDS
) -> bool:
    """Poll ``check`` until it is true (returns True) or the deadline passes (False)."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return True
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.25)
