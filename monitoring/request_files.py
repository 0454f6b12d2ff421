"""Request-log housekeeping: temporary files left by a crashed writer, and retention.

`monitoring.requests.append_requests` writes ``<dir>/date=YYYY-MM-DD/.requests-<us>-<pid>-<n>.tmp``
then renames it; a process killed in between leaves the temporary file behind (readers skip it).
`tidy_request_log` removes those and the day folders past the retention; the service's
`RequestLogger` runs it at start and on its first flush of each UTC day.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

STALE_TMP_S = 600  # a temporary file this old is stale whoever wrote it (a flush takes seconds)
_TMP_PID = re.compile(r"^\.requests-\d+-(\d+)-\d+\.tmp$")
_DAY = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
log = logging.getLogger("paycycle.monitoring.requests")


@dataclass(frozen=True)
class Tidied:
    """What `tidy_request_log` removed."""

    tmp_files: list[Path]
    days: list[str]


def tidy_request_log(
    directory: Path, retention_days: int | None, today: dt.date | None = None
) -> Tidied:
    """Remove stale temporary files and the `date=` folders older than `retention_days`.

    A temporary file is stale when the process named in it is gone, or it is older than
    `STALE_TMP_S` (another host's writer). A folder is removed when its day is more than
    `retention_days` days before `today` (UTC); folders not named `date=YYYY-MM-DD` are left
    alone. A file or folder that cannot be removed is logged and skipped.

    Args:
        directory: the request-log folder.
        retention_days: days kept besides today; None keeps every day.
        today: the current UTC day (tests pass one).

    Returns:
        The temporary files and the days removed.
    """
    tmp_files: list[Path] = []
    days: list[str] = []
    if not directory.is_dir():
        return Tidied(tmp_files, days)
    now = time.time()
    for tmp in directory.glob("date=*/.*.tmp"):
        match = _TMP_PID.match(tmp.name)
        try:
            stale = (match is not None and not _alive(int(match[1]))) or (
                now - tmp.stat().st_mtime > STALE_TMP_S
            )
            if stale:
                tmp.unlink()
                tmp_files.append(tmp)
        except FileNotFoundError:
            continue  # its writer renamed or removed it meanwhile
        except OSError as exc:
            log.warning("request log: cannot remove %s (%s)", tmp, exc.strerror or exc)
    if retention_days is not None:
        today = today or dt.datetime.now(dt.UTC).date()
        oldest = today - dt.timedelta(days=retention_days)
        for folder in directory.glob("date=*"):
            match = _DAY.match(folder.name)
            try:
                day = dt.date.fromisoformat(match[1]) if match else None
            except ValueError:
                day = None
            if day is None or day >= oldest or not folder.is_dir():
                continue
            try:
                shutil.rmtree(folder)
                days.append(day.isoformat())
            except OSError as exc:
                log.warning("request log: cannot remove %s (%s)", folder, exc.strerror or exc)
    if tmp_files or days:
        log.info(
            "request log: removed %d stale temporary file(s) and %d day(s) older than %s day(s)",
            len(tmp_files),
            len(days),
            retention_days,
        )
    return Tidied(sorted(tmp_files), sorted(days))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    except OverflowError:
        return False
    return True
