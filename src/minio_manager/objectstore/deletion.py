"""Prefix deletion's report, shared by the adapters: what the store refused, in our words."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from minio_manager.errors import DataNotDeleted
from minio_manager.request_context import current_request_id

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
"""Keys per listing page (the S3 maximum) and so per DeleteObjects call."""


@dataclass(frozen=True)
class DeleteFailure:
    """One ``<Error>`` entry of a DeleteObjects answer."""

    key: str
    code: str
    message: str


def not_deleted(
    bucket: str, prefix: str, refused: Sequence[DeleteFailure], remaining: Sequence[str]
) -> DataNotDeleted:
    """Log the store's own words with the request id; tell the caller codes and counts."""
    for failure in refused[:20]:
        log.warning(
            "object not deleted (request %s): %s/%s: %s %s",
            current_request_id(),
            bucket,
            failure.key,
            failure.code,
            failure.message,
        )
    codes = sorted({f.code for f in refused})
    count = max(len(refused), len(remaining))
    more = "" if len(remaining) < PAGE_SIZE else " or more"
    because = f" (the store answered {', '.join(codes)})" if codes else ""
    return DataNotDeleted(
        f"{count}{more} objects under s3a://{bucket}/{prefix} could not be deleted{because};"
        " nothing was reported as deleted. Remove what blocks them (e.g. a retention or"
        " legal hold) and repeat the call: it resumes where it stopped"
    )
