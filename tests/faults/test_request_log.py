"""Request-log faults, performed for real: a folder that cannot be created, a full disk, a
file-size limit, a writer killed mid-file, a buffer that outgrows its bound, old days piling up.

The safe outcome every time: the failure is counted (the counter the service exposes in
/metrics) and logged once with its reason, no temporary file is left, the rows stay buffered
(up to the bound; past it the oldest are dropped and counted) and the next flush that can write
writes them all, once. Tests run as root, where permission bits stop nothing: folders are made
unwritable by putting a regular file where a folder must be.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, Counter

from monitoring.request_files import STALE_TMP_S, tidy_request_log
from monitoring.requests import RequestLogger, read_requests
from tests.conftest import PROJECT_ROOT

LOGGER = "paycycle.monitoring.requests"


class _Id:
    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id


def _logger(
    directory: Path, flush_rows: int, max_rows: int, **kwargs
) -> tuple[RequestLogger, CollectorRegistry]:
    registry = CollectorRegistry()
    failures = Counter("failures", "flush failures", registry=registry)
    dropped = Counter("dropped", "dropped rows", registry=registry)
    logger = RequestLogger(
        directory, flush_rows, max_rows, failures=failures, dropped=dropped, **kwargs
    )
    return logger, registry


def _log(logger: RequestLogger, ids: range) -> None:
    """One scored batch the way the service's batcher hands it over."""
    n = len(ids)
    columns = {"usage_pattern": np.arange(n, dtype="float64") + ids.start}
    logger.log_scored([_Id(f"c{i}") for i in ids], np.full(n, 0.5), "3", columns)


def _counted(registry: CollectorRegistry) -> tuple[float | None, float | None]:
    return registry.get_sample_value("failures_total"), registry.get_sample_value("dropped_total")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= 30]


def _run_child(
    mode: str, where: Path, prefix: list[str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "tests.faults.reqlog_child", mode, str(where)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_unwritable_folder_is_counted_logged_once_and_rows_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: the background flush raised into a Future nobody read and the rows were gone."""
    blocker = tmp_path / "data"
    blocker.write_text("a regular file where the request-log folder's parent must be")
    logs = blocker / "requests"
    logger, registry = _logger(logs, flush_rows=4, max_rows=100)
    caplog.set_level(logging.WARNING, logger=LOGGER)

    _log(logger, range(0, 4))  # reaches flush_rows: the background writer tries and fails
    logger.close()  # waits for it, then flushes once more: fails again
    failures = logger.flush_failures
    assert failures == 2 and _counted(registry) == (2.0, 0.0)
    messages = _warnings(caplog)
    assert len(messages) == failures  # once per failure, not per row
    assert all("Not a directory" in m and "4 rows kept" in m for m in messages)
    assert logger.buffered_rows == 4

    blocker.unlink()  # the operator fixes the folder: the next flush writes every kept row
    assert logger.flush() is not None
    assert read_requests(logs)["customer_id"].tolist() == ["c0", "c1", "c2", "c3"]
    assert logger.buffered_rows == 0 and _counted(registry) == (2.0, 0.0)
    assert not list(tmp_path.rglob("*.tmp"))


def test_bound_drops_the_oldest_rows_and_counts_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: while flushes failed the buffer grew without bound."""
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    logger, registry = _logger(blocker / "requests", flush_rows=3, max_rows=10)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    for start in range(0, 12, 3):  # 12 rows in batches of 3, every flush failing
        _log(logger, range(start, start + 3))
    logger.close()

    assert logger.buffered_rows == 10
    assert logger.dropped_rows == 2 and _counted(registry)[1] == 2.0
    assert _counted(registry)[0] == logger.flush_failures >= 1
    assert any("oldest dropped (max 10 buffered)" in m for m in _warnings(caplog))

    blocker.unlink()
    logger.flush()
    out = read_requests(blocker / "requests")
    assert out["customer_id"].tolist() == [f"c{i}" for i in range(2, 12)]  # c0, c1 dropped
    assert out["usage_pattern"].tolist() == [float(i) for i in range(2, 12)]  # rows stay whole


def test_rows_parquet_cannot_hold_are_dropped_and_counted_not_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    logger, registry = _logger(tmp_path, flush_rows=100, max_rows=100)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    logger.log(pd.DataFrame({"customer_id": ["a", "b"], "mixed": [1, "one"]}))
    assert logger.flush() is None
    assert _counted(registry) == (1.0, 2.0) and logger.buffered_rows == 0
    assert len(_warnings(caplog)) == 1 and "2 rows cannot be written" in _warnings(caplog)[0]
    assert not list(tmp_path.rglob("*.tmp")) and read_requests(tmp_path).empty


def test_file_size_limit_leaves_no_tmp_and_the_next_flush_writes_everything(
    tmp_path: Path,
) -> None:
    """A real kernel refusal mid-write (RLIMIT_FSIZE: EFBIG) in a child process."""
    done = _run_child("fsize", tmp_path / "logs")
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["failed"] == "None"
    assert seen["after_failure"] == {
        "failures": 1,
        "failures_counter": 1.0,
        "dropped_counter": 0.0,
        "buffered": 20_000,
        "tmp_files": [],  # before: the half-written .tmp stayed
    }
    assert "File too large" in done.stderr and done.stderr.count("flush failed") == 1
    assert seen["written"].endswith(".parquet") and seen["rows_read"] == 20_000
    assert seen["after_recovery"]["buffered"] == 0


def _can_mount_tmpfs(where: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=64k",
            "tmpfs",
            str(where),
        ],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


def test_disk_full_is_counted_no_tmp_left_and_rows_written_once_space_returns(
    tmp_path: Path,
) -> None:
    """A real full disk: a 512 kB tmpfs in a private mount namespace, filled up."""
    where = tmp_path / "disk"
    where.mkdir()
    if not _can_mount_tmpfs(where):
        pytest.skip("needs unshare + mount (a private tmpfs) for a real ENOSPC")
    mount = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount -t tmpfs -o size=512k tmpfs "$1" && shift && exec "$@"',
        "sh",
        str(where),
    ]
    done = _run_child("full", where, prefix=mount)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["filled"] == "No space left on device"
    assert seen["first"].endswith(".parquet") and seen["failed"] == "None"
    assert seen["after_failure"]["failures_counter"] == 1.0
    assert seen["after_failure"]["buffered"] == 5_000
    assert seen["after_failure"]["tmp_files"] == []
    assert "No space left on device" in done.stderr and done.stderr.count("flush failed") == 1
    assert seen["written"].endswith(".parquet") and seen["rows_read"] == 5_010  # none lost
    assert not any(where.iterdir())  # the tmpfs died with its namespace


def test_tmp_of_a_killed_writer_is_ignored_by_readers_and_removed_at_start(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "requests"
    logger, _ = _logger(logs, flush_rows=10, max_rows=10, retention_days=30)
    _log(logger, range(0, 2))
    logger.flush()
    crashed = _run_child("crash", logs)  # SIGKILL between the write and the rename
    assert crashed.returncode == -9, crashed.stderr
    (left,) = logs.rglob("*.tmp")
    assert left.stat().st_size > 0
    assert read_requests(logs)["customer_id"].tolist() == ["c0", "c1"]  # the .tmp is not read

    live = left.with_name(f".requests-1-{os.getpid()}-0.tmp")  # a live writer's file: kept
    live.write_bytes(b"in progress")
    old = left.with_name(f".requests-1-{os.getpid()}-1.tmp")  # live pid, but hours old: stale
    old.write_bytes(b"abandoned")
    an_hour_ago = time.time() - STALE_TMP_S - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))

    tidied = logger.tidy()  # what the service runs when it starts
    assert tidied.tmp_files == sorted([left, old]) and tidied.days == []
    assert sorted(logs.rglob("*.tmp")) == [live]
    assert read_requests(logs)["customer_id"].tolist() == ["c0", "c1"]


def test_retention_deletes_old_days_and_keeps_recent_ones(tmp_path: Path) -> None:
    today = dt.date(2026, 3, 31)
    days = {n: (today - dt.timedelta(days=n)).isoformat() for n in (0, 1, 7, 8, 40)}
    for n, day in days.items():
        pd.DataFrame({"customer_id": [n]}).to_parquet(
            (tmp_path / f"date={day}").mkdir()
            or tmp_path / f"date={day}" / "requests-1-1-1.parquet"
        )
    (tmp_path / "date=someday").mkdir()  # not ours to judge
    (tmp_path / "notes.txt").write_text("kept")

    tidied = tidy_request_log(tmp_path, retention_days=7, today=today)

    assert tidied.days == sorted([days[8], days[40]])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(
        [f"date={days[0]}", f"date={days[1]}", f"date={days[7]}", "date=someday", "notes.txt"]
    )
    assert tidy_request_log(tmp_path, retention_days=None, today=today).days == []


def test_first_flush_of_the_day_applies_the_retention(tmp_path: Path) -> None:
    old = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=40)
    (tmp_path / f"date={old.isoformat()}").mkdir()
    logger, _ = _logger(tmp_path, flush_rows=10, max_rows=10, retention_days=30)
    _log(logger, range(0, 1))
    written = logger.flush()
    assert written is not None
    assert [p.name for p in tmp_path.iterdir()] == [written.parent.name]
