"""Faults the request log meets that need a process of their own (`python -m` this module).

- `crash DIR`: the writer is killed (SIGKILL) between writing its temporary file and renaming it.
- `fsize DIR`: a file-size limit (RLIMIT_FSIZE) makes the kernel refuse the write (EFBIG), then
  the limit is lifted and the next flush writes every row.
- `full DIR`: DIR is a tiny tmpfs (mounted by the caller in a private mount namespace); the test
  fills it (ENOSPC), flushes, frees it, flushes again.

Each mode prints one JSON line with what it saw; warnings go to stderr.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import signal
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Counter

from monitoring.requests import RequestLogger, append_requests, read_requests


def _logger(
    directory: Path, flush_rows: int, max_rows: int
) -> tuple[RequestLogger, CollectorRegistry]:
    registry = CollectorRegistry()
    failures = Counter("failures", "flush failures", registry=registry)
    dropped = Counter("dropped", "dropped rows", registry=registry)
    logger = RequestLogger(directory, flush_rows, max_rows, failures=failures, dropped=dropped)
    return logger, registry


def _log_rows(logger: RequestLogger, start: int, rows: int) -> None:
    rng = np.random.default_rng(start)
    columns = {"usage_pattern": rng.random(rows), "subscription_duration": rng.random(rows)}
    customers = [type("C", (), {"customer_id": f"c{i}"})() for i in range(start, start + rows)]
    logger.log_scored(customers, rng.random(rows), "1", columns)


def _state(logger: RequestLogger, registry: CollectorRegistry, directory: Path) -> dict:
    return {
        "failures": logger.flush_failures,
        "failures_counter": registry.get_sample_value("failures_total"),
        "dropped_counter": registry.get_sample_value("dropped_total"),
        "buffered": logger.buffered_rows,
        "tmp_files": sorted(p.name for p in directory.rglob("*.tmp")),
    }


def crash(directory: Path) -> None:
    def killed(self, target):  # the process dies after the write, before the rename
        os.kill(os.getpid(), signal.SIGKILL)

    Path.replace = killed  # type: ignore[method-assign]
    append_requests(pd.DataFrame({"customer_id": ["lost"], "churn_probability": [0.5]}), directory)


def fsize(directory: Path) -> None:
    logger, registry = _logger(directory, 100_000, 200_000)
    _log_rows(logger, 0, 20_000)  # ~300 kB of Parquet: far past the limit below
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16_384, hard))
    failed = logger.flush()
    after_failure = _state(logger, registry, directory)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    written = logger.flush()
    print(
        json.dumps(
            {
                "failed": str(failed),
                "after_failure": after_failure,
                "written": str(written),
                "after_recovery": _state(logger, registry, directory),
                "rows_read": len(read_requests(directory)),
            }
        )
    )


def full(directory: Path) -> None:
    logs = directory / "requests"
    logger, registry = _logger(logs, 100_000, 200_000)
    _log_rows(logger, 0, 10)
    first = logger.flush()  # today's folder exists; the disk is not full yet
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:  # fill it: a real ENOSPC (unbuffered, so
        # closing it has nothing left to write)
        try:
            while True:
                out.write(b"\0" * 65_536)
        except OSError as exc:
            filled = exc.strerror
    _log_rows(logger, 10, 5_000)
    failed = logger.flush()
    after_failure = _state(logger, registry, logs)
    filler.unlink()
    written = logger.flush()
    print(
        json.dumps(
            {
                "filled": filled,
                "first": str(first),
                "failed": str(failed),
                "after_failure": after_failure,
                "written": str(written),
                "after_recovery": _state(logger, registry, logs),
                "rows_read": len(read_requests(logs)),
            }
        )
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    mode, where = sys.argv[1], Path(sys.argv[2])
    {"crash": crash, "fsize": fsize, "full": full}[mode](where)
