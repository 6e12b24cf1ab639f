"""The errors an object store reports to the services, whichever adapter is behind the port.

An adapter translates its own codes into a ``Refusal`` kind, so services decide on the kind
and never on a store's vocabulary (``XMinioAdmin...``, ``NoSuchEntity``); the store's own code
and text travel along for the log and the ``502`` message only.
"""

from __future__ import annotations

from enum import StrEnum

from minio_manager.errors import ObjectStoreUnavailable, ServiceBusy


class Refusal(StrEnum):
    """Why the store refused: the part of its answer that services may act on."""

    NOT_FOUND = "not_found"
    INVALID_NAME = "invalid_name"
    CONFLICT = "conflict"
    OTHER = "other"


class StoreRejected(Exception):
    """The store answered with a 4xx; ``code`` is its own error code (for the log)."""

    def __init__(self, status: int, code: str, message: str, kind: Refusal = Refusal.OTHER) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.kind = kind

    @property
    def not_found(self) -> bool:
        return self.kind is Refusal.NOT_FOUND


class StoreUnavailable(ObjectStoreUnavailable):
    """The store could not be reached, timed out or failed (5xx): reported as 503."""


class StoreBusy(ServiceBusy):
    """No pooled connection to the store came free in time (it is up): reported as 429."""
