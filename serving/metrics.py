"""The service's own Prometheus counters, served with BentoML's at `GET /metrics`.

BentoML 1.4 runs `prometheus_client` in multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set for
each worker before it starts) and answers `/metrics` from the files every worker writes, so a
counter must be a plain `prometheus_client.Counter` created in the worker, after that variable is
set: `prometheus_client` is imported here, when the service starts, never at import time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

FLUSH_FAILURES = "paycycle_request_log_flush_failures"  # exposed with a `_total` suffix
DROPPED_ROWS = "paycycle_request_log_dropped_rows"


@dataclass(frozen=True)
class RequestLogCounters:
    """Counters the request log increments once per flush (never per request)."""

    flush_failures: Any
    dropped_rows: Any


@functools.cache
def request_log_counters() -> RequestLogCounters:
    """The request-log counters, registered once per process in the default registry."""
    from prometheus_client import Counter

    return RequestLogCounters(
        flush_failures=Counter(
            FLUSH_FAILURES, "Request-log flushes that failed (rows kept for the next flush)"
        ),
        dropped_rows=Counter(
            DROPPED_ROWS,
            "Request-log rows dropped (buffer full while flushes failed, or unwritable)",
        ),
    )


ANSWERS = "paycycle_rollout_answers"  # exposed with a `_total` suffix
CHALLENGER_ERRORS = "paycycle_rollout_challenger_errors"
MODEL_CALL_SECONDS = "paycycle_rollout_model_call_seconds"


@dataclass(frozen=True)
class RolloutMetrics:
    """Per model version during a rollout: customers answered (role: champion, canary, shadow,
    fallback), challenger requests that raised, and the challenger's model-call latency."""

    answers: Any
    errors: Any
    call_seconds: Any


@functools.cache
def rollout_metrics() -> RolloutMetrics:
    """The rollout's metrics, registered once per process (counted per batch, not per row)."""
    from prometheus_client import Counter, Histogram

    return RolloutMetrics(
        answers=Counter(ANSWERS, "Customers scored during a rollout", ["version", "role"]),
        errors=Counter(CHALLENGER_ERRORS, "Challenger requests that raised", ["version"]),
        call_seconds=Histogram(
            MODEL_CALL_SECONDS,
            "Challenger model calls (one per batch)",
            ["version"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        ),
    )


HOT_REQUESTS = "paycycle_hot_requests"  # exposed with a `_total` suffix
HOT_DURATION = "paycycle_hot_request_duration_seconds"


class HotRouteMetrics:
    """Requests and latency of the hot routes (`serving.hot`), which skip BentoML's metrics
    middleware: its label lookups per request cost more than the answer itself, so each
    (route, status) child is looked up once and kept."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        self._total = Counter(
            HOT_REQUESTS, "Hot-route requests by route and status", ["route", "status"]
        )
        self._duration = Histogram(
            HOT_DURATION, "Hot-route time from request to answer, seconds", ["route"]
        )
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        child = self._children.get((route, status))
        if child is None:
            child = self._total.labels(route, str(status)), self._duration.labels(route)
            self._children[(route, status)] = child
        child[0].inc()
        child[1].observe(seconds)


@functools.cache
def hot_route_metrics() -> HotRouteMetrics:
    """The hot-route metrics, registered once per process in the default registry."""
    return HotRouteMetrics()
