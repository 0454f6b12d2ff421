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
