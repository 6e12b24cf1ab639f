"""The one error envelope and the code table of SPEC §4.

Every failure the service reports is a ``ServiceError`` subclass; the app factory turns it
into ``{"error": code, "error_type": name, "message": text}`` with the matching status.
Messages are written for the caller and must never contain a secret.
"""

from __future__ import annotations

from http import HTTPStatus


class ServiceError(Exception):
    """Base of every error the API reports in the envelope."""

    code: int = 50000
    error_type: str = "internal_error"
    status: int = HTTPStatus.INTERNAL_SERVER_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MissingToken(ServiceError):
    code, error_type, status = 10010, "no_token", 401


class InvalidToken(ServiceError):
    code, error_type, status = 10020, "invalid_token", 401


class InvalidAuthHeader(ServiceError):
    code, error_type, status = 10030, "invalid_auth_header", 401


class MissingRole(ServiceError):
    code, error_type, status = 10040, "missing_role", 403


class PathInvalid(ServiceError):
    code, error_type, status = 20015, "path_invalid", 400


class PolicyOperationError(ServiceError):
    code, error_type, status = 20016, "policy_operation_failed", 500


class UserOperationError(ServiceError):
    code, error_type, status = 20030, "user_operation_failed", 400


class UserNotFound(ServiceError):
    """Unknown user on an admin call (SPEC FIX: 404 rather than a silent create)."""

    code, error_type, status = 20031, "user_not_found", 404


class UnmanagedUser(ServiceError):
    """A login or admin call names a store user this service did not create or adopt (e.g. a
    service account made by hand): its secret is never reset or handed out until an admin
    adopts it (``POST /management/users/{u}/adopt``)."""

    code, error_type, status = 20032, "user_not_managed", 409


class GroupOperationError(ServiceError):
    code, error_type, status = 20040, "group_operation_failed", 400


class GroupNotFound(ServiceError):
    code, error_type, status = 20041, "group_not_found", 404


class GovernanceViolation(ServiceError):
    code, error_type, status = 20042, "governance_violation", 403


class CredentialLockTimeout(ServiceError):
    code, error_type, status = 20045, "credential_lock_timeout", 409


class GroupBusy(ServiceError):
    """Another membership change of the same group pair held its lock past the wait limit
    (a conflict to retry, not a bad request: nothing was changed)."""

    code, error_type, status = 20046, "group_busy", 409


class ShareLimitExceeded(ServiceError):
    """The share would need more policies attached to a target than the store allows."""

    code, error_type, status = 20047, "share_limit_exceeded", 409


class ObjectStoreUnavailable(ServiceError):
    code, error_type, status = 20050, "object_store_unavailable", 503


class ObjectStoreRefused(ServiceError):
    """MinIO refused an operation we did not expect it to refuse (e.g. a concurrent change)."""

    code, error_type, status = 20051, "object_store_refused", 502


class DataNotDeleted(ServiceError):
    """Some objects under a prefix being deleted are still there (the store refused to delete
    them, or they were written meanwhile); repeating the deletion resumes it."""

    code, error_type, status = 20053, "data_not_deleted", 409


class BucketInvalid(ServiceError):
    code, error_type, status = 30020, "bucket_invalid", 400


class RequestValidationFailed(ServiceError):
    code, error_type, status = 30010, "validation_error", 422


class RequestTooLarge(ServiceError):
    """The body passed the size cap (``MAX_REQUEST_BODY_BYTES``); answered before auth."""

    code, error_type, status = 30030, "request_too_large", 413


class TenantBadRequest(ServiceError):
    code, error_type, status = 40010, "tenant_bad_request", 400


class TenantForbidden(ServiceError):
    code, error_type, status = 40020, "tenant_forbidden", 403


class TenantNotFound(ServiceError):
    code, error_type, status = 40030, "tenant_not_found", 404


class NotFound(ServiceError):
    code, error_type, status = 40400, "not_found", 404


class AuthServiceUnavailable(ServiceError):
    """KBase auth answered 5xx, timed out or was unreachable: the token may be fine."""

    code, error_type, status = 50010, "auth_service_unavailable", 503


class DatabaseUnavailable(ServiceError):
    code, error_type, status = 50020, "database_unavailable", 503


class LockServiceUnavailable(ServiceError):
    code, error_type, status = 50030, "lock_service_unavailable", 503


class ServiceBusy(ServiceError):
    """Every slot of a bounded queue or connection pool stayed taken for its whole wait.

    The dependency behind it is up (it is serving the requests ahead of this one), so this is
    not a 503 outage: 429 with ``Retry-After`` tells the caller to come back shortly.
    """

    code, error_type, status = 50040, "service_busy", 429
    retry_after_seconds = 5


class InternalError(ServiceError):
    code, error_type, status = 50000, "internal_error", 500


def error_body(error: ServiceError) -> dict[str, object]:
    """Render the single error envelope."""
    return {"error": error.code, "error_type": error.error_type, "message": error.message}


class PrincipalBusy(ServiceError):
    """Another renderer holds the principal's advisory lock beyond the wait limit."""

    code, error_type, status = 20017, "principal_busy", 409
