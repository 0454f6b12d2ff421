"""Request log shared by serving (writer) and monitoring (reader): Parquet files under a folder.

The service's churn batcher hands each scored batch (with the feature columns it built for the
model) to a `RequestLogger` on the scoring thread, which flushes one file per `max_rows` rows
(`append_requests`) from a background thread, so a request pays nothing; the monitor reads
every file written since a time (`read_requests`). Files are named
``<dir>/date=YYYY-MM-DD/requests-<UTC microseconds>-<pid>-<n>.parquet`` and written to a
temporary name then renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from paycycle.errors import DataError

TIME_COLUMN = "logged_at"
PREDICTION_COLUMN = "churn_probability"
VERSION_COLUMN = "model_version"
_counter = itertools.count()
# customer ids, predictions, model version, answered at (ns since the epoch), feature columns
Scored = tuple[list[str | None], np.ndarray, str, int, Mapping[str, np.ndarray]]


def append_requests(frame: pd.DataFrame, directory: Path) -> Path | None:
    """Write one batch of logged requests (features + prediction columns) as one Parquet file.

    Args:
        frame: one row per scored customer; a `logged_at` column (UTC) is added if missing.
        directory: the request-log folder (`settings.path(settings.params.drift.requests_dir)`).

    Returns:
        The file written, or None for an empty batch.
    """
    if frame.empty:
        return None
    now = pd.Timestamp.now(tz="UTC")
    if TIME_COLUMN not in frame:
        frame = frame.assign(**{TIME_COLUMN: now})
    folder = directory / f"date={now.date().isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"requests-{now.value // 1000}-{os.getpid()}-{next(_counter)}"
    tmp, final = folder / f".{stem}.tmp", folder / f"{stem}.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp, compression="zstd")
    tmp.replace(final)
    return final


class RequestLogger:
    """In-memory buffer that flushes to `append_requests` every `max_rows` rows (or on `flush`).

    Thread-safe; `log` only appends a frame to a list under a lock. The service uses
    `log_scored` from its batcher's scoring thread: it keeps the batch's customer ids,
    probabilities and the feature columns the model scored, and a background thread
    concatenates them when it flushes, so a request pays nothing on its own path
    (`benchmarks/bench_serving.py` measures it).
    """

    def __init__(self, directory: Path, max_rows: int = 10_000) -> None:
        self.directory = directory
        self.max_rows = max_rows
        self._frames: list[pd.DataFrame] = []
        self._scored: list[Scored] = []
        self._rows = 0
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._queued = False  # a background flush is already on its way

    def log(self, frame: pd.DataFrame) -> Path | None:
        """Buffer a batch; flush when the buffer reaches `max_rows`."""
        stamped = frame.assign(**{TIME_COLUMN: pd.Timestamp.now(tz="UTC")})
        with self._lock:
            self._frames.append(stamped)
            self._rows += len(stamped)
            full = self._rows >= self.max_rows
        return self.flush() if full else None

    def log_scored(
        self,
        customers: Sequence[Any],
        probs: np.ndarray,
        version: str,
        columns: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Buffer one scored batch; past `max_rows` a background thread writes the file.

        `columns` are the feature columns the model scored (`serving.batching`'s); without them
        they are built here. Only ids, numbers and arrays are kept, not the request objects, so
        the buffer adds nothing for the garbage collector to walk."""
        if columns is None:
            from features.columns import customers_to_columns

            columns = customers_to_columns(customers)
        ids = [_text(getattr(c, "customer_id", None)) for c in customers]
        with self._lock:
            self._scored.append((ids, probs, version, time.time_ns(), columns))
            self._rows += len(ids)
            full = self._rows >= self.max_rows and not self._queued
            self._queued = self._queued or full
        if full:  # one flush in flight at a time: no flood of tiny files under load
            self._writer().submit(self.flush)

    def _writer(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="request-log")
        return self._pool

    def flush(self) -> Path | None:
        """Write whatever is buffered as one file."""
        with self._lock:
            frames, self._frames, self._rows = self._frames, [], 0
            scored, self._scored = self._scored, []
            self._queued = False
        if scored:
            frames.append(_scored_frame(scored))
        if not frames:
            return None
        return append_requests(pd.concat(frames, ignore_index=True), self.directory)

    def close(self) -> None:
        """Write what is left and stop the background writer."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.flush()


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _scored_frame(scored: list[Scored]) -> pd.DataFrame:
    """Buffered batches as one frame, one concatenation per column: the feature columns, the
    customer id, the prediction, the model version and the time each batch was answered."""
    sizes = [len(ids) for ids, *_ in scored]
    names = list(scored[0][4])
    frame = pd.DataFrame({n: np.concatenate([cols[n] for *_, cols in scored]) for n in names})
    frame["customer_id"] = [i for ids, *_ in scored for i in ids]
    frame[PREDICTION_COLUMN] = np.concatenate([np.ravel(p) for _, p, *_ in scored])
    frame[VERSION_COLUMN] = np.repeat([v for _, _, v, *_ in scored], sizes)
    stamps = np.repeat(np.array([t for _, _, _, t, _ in scored], dtype="int64"), sizes)
    frame[TIME_COLUMN] = pd.to_datetime(stamps, unit="ns", utc=True)
    return frame


def read_requests(directory: Path, since: dt.datetime | pd.Timestamp | None = None) -> pd.DataFrame:
    """Every logged request with `logged_at >= since` (all of them when `since` is None).

    Raises:
        DataError: a file cannot be read (named in the message).
    """
    since_ts = None if since is None else pd.Timestamp(since)
    if since_ts is not None and since_ts.tzinfo is None:
        since_ts = since_ts.tz_localize("UTC")
    frames = []
    for path in sorted(directory.glob("date=*/requests-*.parquet")):
        day = pd.Timestamp(path.parent.name.removeprefix("date="), tz="UTC")
        if since_ts is not None and day + pd.Timedelta(days=1) <= since_ts:
            continue  # the whole day is before `since`
        try:
            df = pq.read_table(path).to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise DataError(
                f"{path}: unreadable request log ({str(exc).splitlines()[0]})"
            ) from None
        if since_ts is not None:
            df = df.loc[df[TIME_COLUMN] >= since_ts]
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=[TIME_COLUMN])
    return pd.concat(frames, ignore_index=True)
