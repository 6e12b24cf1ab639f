"""Prometheus metrics: the names, the small recording hooks the layers call, and ``/metrics``.

This module imports nothing of ours, so any layer may call its hooks (``cache_lookup``,
``lock_waited``, ...) without an arrow pointing back up. Labels are always drawn from small
fixed sets (route templates, dependency operation names, lock kinds), never from raw paths,
user names or lock names, so a caller cannot grow the series count.

Several worker processes (``uvicorn --workers N``, gunicorn): set ``PROMETHEUS_MULTIPROC_DIR``
to an empty, writable directory before the service starts; every process then writes its
samples there and ``/metrics`` answers with the sum over all of them. Without it, each process
reports only its own.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Dependency calls are mostly milliseconds; lock waits and requests can last tens of seconds.
_FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SLOW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

HTTP_REQUESTS = Counter(
    "mms_http_requests",
    "HTTP requests answered, by route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "mms_http_request_duration_seconds",
    "Time from receiving a request to the end of its response, by route template and status.",
    ["method", "route", "status"],
    buckets=_SLOW_BUCKETS,
)
DEPENDENCY_DURATION = Histogram(
    "mms_dependency_call_duration_seconds",
    "Latency of calls to the object store, PostgreSQL, Redis and KBase auth.",
    ["dependency", "operation"],
    buckets=_FAST_BUCKETS,
)
DEPENDENCY_ERRORS = Counter(
    "mms_dependency_errors",
    "Failed calls to a dependency (unreachable, timed out, 5xx, or a driver error).",
    ["dependency", "operation", "kind"],
)
LOCK_WAIT = Histogram(
    "mms_lock_wait_seconds",
    "Time spent waiting to acquire a named Redis lock, by lock kind.",
    ["lock", "outcome"],
    buckets=_SLOW_BUCKETS,
)
LOCK_TIMEOUTS = Counter(
    "mms_lock_timeouts",
    "Lock waits that gave up (the caller got a 409-style error).",
    ["lock"],
)
CACHE_LOOKUPS = Counter(
    "mms_cache_lookups",
    "Lookups in the per-process caches (auth tokens, group membership).",
    ["cache", "result"],
)
PROVISIONED = Counter(
    "mms_provisioned",
    "Principals provisioned (created or repaired) in the object store.",
    ["kind"],
)

# The outbox is shared by every replica, so any process's latest reading is the truth:
# "mostrecent" keeps the newest value across worker processes.
RECONCILER_BACKLOG = Gauge(
    "mms_reconciler_backlog",
    "Principals whose policies are not yet enforced in the object store (outbox rows pending).",
    multiprocess_mode="mostrecent",
)
RECONCILER_OLDEST = Gauge(
    "mms_reconciler_oldest_pending_seconds",
    "Age of the oldest pending outbox row (0 when none is pending).",
    multiprocess_mode="mostrecent",
)
RECONCILER_FAILING = Gauge(
    "mms_reconciler_failing",
    "Pending outbox rows whose enforcement has failed at least once.",
    multiprocess_mode="mostrecent",
)

UNMATCHED_ROUTE = "<unmatched>"


# -- hooks the layers call ----------------------------------------------------------------------
def observe_dependency(
    dependency: str, operation: str, seconds: float, error: str | None = None
) -> None:
    """One call to a dependency; ``error`` is a short kind (e.g. ``timeout``) when it failed."""
    DEPENDENCY_DURATION.labels(dependency, operation).observe(seconds)
    if error is not None:
        DEPENDENCY_ERRORS.labels(dependency, operation, error).inc()


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route, str(status)).observe(seconds)


def lock_kind(name: str) -> str:
    """``credential_lock:alice`` → ``credential_lock``: the kind, never the principal."""
    return name.split(":", 1)[0]


def lock_waited(name: str, seconds: float, *, acquired: bool) -> None:
    kind = lock_kind(name)
    LOCK_WAIT.labels(kind, "acquired" if acquired else "timeout").observe(seconds)
    if not acquired:
        LOCK_TIMEOUTS.labels(kind).inc()


def cache_lookup(cache: str, *, hit: bool) -> None:
    CACHE_LOOKUPS.labels(cache, "hit" if hit else "miss").inc()


def provisioned(kind: str) -> None:
    PROVISIONED.labels(kind).inc()


def reconciler_backlog(pending: int, oldest_seconds: float | None, failing: int) -> None:
    RECONCILER_BACKLOG.set(pending)
    RECONCILER_OLDEST.set(oldest_seconds or 0.0)
    RECONCILER_FAILING.set(failing)


# -- exposition -------------------------------------------------------------------------------
def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render() -> tuple[bytes, str]:
    """The text exposition and its content type; summed over processes in multi-process mode."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
