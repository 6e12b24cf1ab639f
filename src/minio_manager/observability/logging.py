"""Structured logs: one line per request and per governance change, JSON or text.

``LOG_FORMAT=json`` writes one JSON object per line with ``time``, ``level``, ``logger``,
``message``, ``request_id`` and ``user`` on every line (the last two from the request being
served, when there is one), plus the fields a line carries (``route``, ``status``,
``duration_ms``, ``action``, ...). ``LOG_FORMAT=text`` writes the same fields as
``key=value`` after the message. Secrets never reach a log call in the first place; see the
test ``tests/integration/test_logging.py``.
"""

from __future__ import annotations

import json
import logging
import sys
import weakref
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from minio_manager.request_context import current_request_id, current_user

# Fields a log call may attach with ``extra=``; anything else stays out of the output.
EXTRA_FIELDS = (
    "event",
    "method",
    "route",
    "path",
    "status",
    "duration_ms",
    "actor",
    "action",
    "target",
    "details",
)
_OURS = "_mms_handler"

governance_log = logging.getLogger("minio_manager.audit")


class ContextFilter(logging.Filter):
    """Stamps the request id and user of the request being served onto every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        if not hasattr(record, "user"):
            record.user = current_user()
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: getattr(record, k) for k in EXTRA_FIELDS if hasattr(record, k)}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "user": getattr(record, "user", None),
            **_extras(record),
        }
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {
            "request_id": getattr(record, "request_id", None),
            "user": getattr(record, "user", None),
            **_extras(record),
        }
        tail = " ".join(
            f"{k}={json.dumps(v, default=str) if isinstance(v, dict) else v}"
            for k, v in fields.items()
            if v is not None
        )
        if not tail:
            return line
        first, newline, rest = line.partition("\n")  # keep a traceback below the fields
        return f"{first} {tail}{newline}{rest}"


def configure_logging(level: str, fmt: str = "text") -> None:
    """Install our handler on the root logger (replacing a previous one of ours only).

    Uvicorn's own loggers are sent through it too, so a JSON deployment has no plain-text
    lines; uvicorn's access log is silenced because the request line below replaces it.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _OURS, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    setattr(handler, _OURS, True)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.setLevel(logging.WARNING)
    # Transport chatter: httpx logs full URLs at INFO, httpcore every socket step at DEBUG.
    for name in ("httpx", "httpcore", "asyncio", "multipart"):
        logging.getLogger(name).setLevel(logging.WARNING)


# -- governance changes ------------------------------------------------------------------------
# Lines waiting for their transaction, keyed by the (sync) connection object of that
# transaction. Not kept in ``Connection.info``: after a lost connection that property raises,
# and a rollback handler must never replace the original error.
_pending: weakref.WeakKeyDictionary[Connection, list[dict[str, Any]]] = weakref.WeakKeyDictionary()


def note_governance_change(conn: AsyncConnection, entry: dict[str, Any]) -> None:
    """Queue the log line of an audit row; it is written when the transaction commits."""
    _pending.setdefault(conn.sync_connection, []).append(entry)  # type: ignore[arg-type]


def log_governance_on_commit(engine: AsyncEngine) -> None:
    """One log line per audit row, on commit only: a rolled-back change is not reported."""
    sync_engine = engine.sync_engine
    if getattr(sync_engine, "_mms_governance_log", False):
        return

    def committed(conn: Connection) -> None:
        for entry in _pending.pop(conn, ()):
            governance_log.info(
                "governance change %s %s", entry["action"], entry["target"], extra=entry
            )

    def rolled_back(conn: Connection) -> None:
        _pending.pop(conn, None)

    event.listen(sync_engine, "commit", committed)
    event.listen(sync_engine, "rollback", rolled_back)
    sync_engine._mms_governance_log = True  # type: ignore[attr-defined]
