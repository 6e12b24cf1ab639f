"""Named points in long operations where a test can pause the work (no-ops otherwise).

Tests install a callback with ``install``; a service process started with
``MMS_CHECKPOINT_PAUSE=<name>`` pauses for good at that checkpoint (so a test can kill it
mid-way) after appending the subject to the file named by ``MMS_CHECKPOINT_MARKER``, if set.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

Hook = Callable[[str, str], Awaitable[None]]
_hook: Hook | None = None


def install(hook: Hook | None) -> None:
    """Set (or with None, remove) the callback run at every checkpoint."""
    global _hook
    _hook = hook


async def checkpoint(name: str, subject: str = "") -> None:
    if _hook is not None:
        await _hook(name, subject)


def install_from_env() -> None:
    """Pause forever at the checkpoint named in ``MMS_CHECKPOINT_PAUSE`` (test processes)."""
    wanted = os.environ.get("MMS_CHECKPOINT_PAUSE")
    if not wanted:
        return
    marker = os.environ.get("MMS_CHECKPOINT_MARKER")

    async def pause(name: str, subject: str) -> None:
        if name == wanted:
            if marker:
                await asyncio.to_thread(_append, Path(marker), subject)
            await asyncio.Event().wait()

    install(pause)


def _append(path: Path, line: str) -> None:
    with path.open("a") as out:
        out.write(line + "\n")
