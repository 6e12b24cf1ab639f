"""How ``mms`` shows things: aligned tables for people, JSON for scripts, a spinner on stderr."""

from __future__ import annotations

import itertools
import json
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], out: TextIO) -> None:
    """Left-aligned columns with a header; an empty list prints ``(none)``."""
    if not rows:
        out.write("(none)\n")
        return
    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    header = [c.upper() for c in columns]
    for line in (header, *cells):
        out.write("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() + "\n")


def fields(record: dict[str, Any], names: Sequence[str], out: TextIO) -> None:
    """One ``name: value`` line per field (a single record)."""
    width = max(len(n) for n in names)
    for name in names:
        out.write(f"{name.ljust(width)}  {cell(record.get(name))}\n")


def dump_json(value: Any, out: TextIO) -> None:
    out.write(json.dumps(value, indent=2, default=str) + "\n")


@contextmanager
def spinner(label: str, stream: TextIO | None = None) -> Iterator[None]:
    """A spinner on stderr while a long call runs; silent when stderr is not a terminal.

    The API answers long operations (rotate-all, regenerate) in one response with no progress
    reports, so a spinner with the elapsed time is all that can honestly be shown.
    """
    stream = stream or sys.stderr
    if not stream.isatty():
        yield
        return
    done = threading.Event()

    def spin() -> None:
        for n, frame in enumerate(itertools.cycle("|/-\\")):
            stream.write(f"\r{frame} {label} ({n // 10}s)")
            stream.flush()
            if done.wait(0.1):
                break
        stream.write("\r" + " " * (len(label) + 12) + "\r")
        stream.flush()

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
