"""Request log shared by serving (writer) and monitoring (reader): Parquet files under a folder.

The service's churn batcher hands each scored batch (with the feature columns it built for the
model) to a `RequestLogger` where it scored it (scoring thread or event loop), which flushes one
file per `flush_rows` rows (`append_requests`) from a background thread, in Arrow chunks that
never hold the GIL for long (`_scored_table`), so a request pays little; the monitor reads
every file written since a time (`read_requests`). Files are named
``<dir>/date=YYYY-MM-DD/requests-<UTC microseconds>-<pid>-<n>.parquet`` and written to a
temporary name then renamed, so a reader never sees half a file.

Faults: a flush that fails (disk full, a folder that cannot be written) removes its temporary
file, is counted and logged once with its reason, and keeps its rows buffered for the next
flush; the buffer holds at most `max_buffer_rows` rows (the oldest are dropped past it, counted).
`tidy_request_log` removes temporary files left by a crashed writer and the `date=` folders older
than the retention; the logger runs it when asked (service start) and on its first flush of
each UTC day.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.columns import CATEGORICAL, NUMERIC, FeatureColumns
from monitoring.request_files import Tidied, tidy_request_log
from paycycle.errors import DataError

TIME_COLUMN = "logged_at"
PREDICTION_COLUMN = "churn_probability"
VERSION_COLUMN = "model_version"
ID_COLUMN = "prediction_id"  # inference.prediction_ids: joins a served prediction to its outcome
# "served": the client got this prediction; "shadow": a challenger scored the same customer (same
# prediction id) during a rollout's shadow stage, off the response path (`serving.rollout`)
ROLE_COLUMN = "role"
SERVED, SHADOW = "served", "shadow"
_TIME_TYPE = pa.timestamp("ns", tz="UTC")
_counter = itertools.count()
log = logging.getLogger("paycycle.monitoring.requests")
_WIDTH = len(NUMERIC) + len(CATEGORICAL)
_CHUNK = 256  # batches per Arrow chunk when a flush builds its table (`_scored_table`)
# customer ids, predictions, model version, answered at (ns since the epoch), feature columns,
# prediction ids, role
Scored = tuple[
    list[str | None], np.ndarray, str, int, Mapping[str, np.ndarray], Sequence[str | None], str
]
Batch = pd.DataFrame | Scored


class Counter(Protocol):
    """What the logger counts into: `prometheus_client.Counter` (the service's) or any `inc`."""

    def inc(self, amount: float = 1) -> None: ...


def append_requests(frame: pd.DataFrame | pa.Table, directory: Path) -> Path | None:
    """Write one batch of logged requests (features + prediction columns) as one Parquet file.

    Args:
        frame: one row per scored customer (a DataFrame, or the Arrow table `RequestLogger`
            builds); a `logged_at` column (UTC) is added if missing.
        directory: the request-log folder (`settings.path(settings.params.drift.requests_dir)`).

    Returns:
        The file written, or None for an empty batch.

    Raises:
        OSError: the file could not be written (its temporary file is removed first).
    """
    if len(frame) == 0:
        return None
    now = pd.Timestamp.now(tz="UTC")
    table = frame
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(frame, preserve_index=False)
    if TIME_COLUMN not in table.column_names:
        stamps = pa.array(np.full(len(table), now.value, dtype="int64")).cast(_TIME_TYPE)
        table = table.append_column(TIME_COLUMN, stamps)
    folder = directory / f"date={now.date().isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"requests-{now.value // 1000}-{os.getpid()}-{next(_counter)}"
    tmp, final = folder / f".{stem}.tmp", folder / f"{stem}.parquet"
    try:
        pq.write_table(table, tmp, compression="zstd")
        tmp.replace(final)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a half-written file helps no one and fills the disk
        raise
    return final


class RequestLogger:
    """In-memory buffer that flushes to `append_requests` every `flush_rows` rows (or on `flush`).

    Thread-safe; `log` only appends a frame to a list under a lock. The service uses
    `log_scored` from its batcher (scoring thread or event loop): it keeps the batch's customer ids,
    probabilities and the feature columns the model scored, and a background thread
    concatenates them when it flushes, so a request pays nothing on its own path
    (`benchmarks/bench_serving.py` measures it).

    A failed flush puts its rows back in front of the buffer, adds one to `flush_failures` (and
    the `failures` counter) and logs one warning with the reason; the next attempt comes after
    another `flush_rows` rows (or `flush`/`close`). The buffer never holds more than
    `max_buffer_rows` rows: past it the oldest are dropped, counted in `dropped_rows` (and the
    `dropped` counter). Rows that cannot be written at all (not an OS error: a column Parquet
    cannot hold) are dropped and counted rather than retried.
    """

    def __init__(
        self,
        directory: Path,
        flush_rows: int = 10_000,
        max_buffer_rows: int | None = None,
        *,
        retention_days: int | None = None,
        failures: Counter | None = None,
        dropped: Counter | None = None,
    ) -> None:
        self.directory = directory
        self.flush_rows = flush_rows
        self.max_buffer_rows = max(max_buffer_rows or 10 * flush_rows, flush_rows)
        self.retention_days = retention_days
        self.flush_failures = 0
        self.dropped_rows = 0
        self._reported_drops = 0  # `dropped_rows` when a warning last mentioned drops
        self._failures, self._dropped = failures, dropped
        self._batches: deque[Batch] = deque()
        self._rows = 0  # rows in the buffer
        self._pending = 0  # rows logged since the last flush started
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one flush at a time (background, flush, close)
        self._pool: ThreadPoolExecutor | None = None
        self._queued = False  # a background flush is already on its way
        self._tidied_on: dt.date | None = None

    @property
    def buffered_rows(self) -> int:
        """Rows waiting for the next flush."""
        return self._rows

    def log(self, frame: pd.DataFrame) -> Path | None:
        """Buffer a batch; flush when `flush_rows` rows arrived since the last flush."""
        stamped = frame.assign(**{TIME_COLUMN: pd.Timestamp.now(tz="UTC")})
        with self._lock:
            full = self._add(stamped, len(stamped))
        return self.flush() if full else None

    def log_scored(
        self,
        customers: Sequence[Any],
        probs: np.ndarray,
        version: str,
        columns: Mapping[str, np.ndarray] | None = None,
        prediction_ids: Sequence[str | None] | None = None,
        role: str = SERVED,
    ) -> None:
        """Buffer one scored batch; past `flush_rows` a background thread writes the file.

        `columns` are the feature columns the model scored (`serving.batching`'s); without them
        they are built here. `prediction_ids`, one per customer, go in the `prediction_id`
        column (null where missing); `role` says whether the client got them (`ROLE_COLUMN`).
        Only ids, numbers and arrays are kept, not the request
        objects, so the buffer adds nothing for the garbage collector to walk."""
        if columns is None:
            from features.columns import customers_to_columns

            columns = customers_to_columns(customers)
        ids = [_text(getattr(c, "customer_id", None)) for c in customers]
        pids = list(prediction_ids) if prediction_ids is not None else [None] * len(ids)
        probs = np.ravel(probs)
        with self._lock:
            full = self._add((ids, probs, version, time.time_ns(), columns, pids, role), len(ids))
            full = full and not self._queued
            self._queued = self._queued or full
        if full:  # one flush in flight at a time: no flood of tiny files under load
            self._writer().submit(self.flush)

    def _add(self, batch: Batch, rows: int) -> bool:
        """Append under the lock; trim past the bound; whether a flush is due."""
        self._batches.append(batch)
        self._rows += rows
        self._pending += rows
        if self._rows > self.max_buffer_rows:  # only while writes fail or lag
            self._trim()
        return self._pending >= self.flush_rows

    def _trim(self) -> None:
        """Drop the oldest rows past `max_buffer_rows` (caller holds the lock)."""
        excess = self._rows - self.max_buffer_rows
        dropped = 0
        while excess > 0 and self._batches:
            first = self._batches[0]
            size = _size(first)
            if size <= excess:
                self._batches.popleft()
                cut = size
            else:
                self._batches[0] = _tail(first, size - excess)
                cut = excess
            excess -= cut
            dropped += cut
        self._rows -= dropped
        self._count_dropped(dropped)

    def _count_dropped(self, rows: int) -> None:
        if rows:
            self.dropped_rows += rows
            if self._dropped is not None:
                self._dropped.inc(rows)

    def _writer(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="request-log")
        return self._pool

    def tidy(self, today: dt.date | None = None) -> Tidied:
        """`tidy_request_log` on this logger's folder with its retention (service start)."""
        today = today or dt.datetime.now(dt.UTC).date()
        self._tidied_on = today
        return tidy_request_log(self.directory, self.retention_days, today)

    def flush(self) -> Path | None:
        """Write whatever is buffered as one file.

        Returns:
            The file written; None when nothing was buffered or the write failed (then the
            rows stay buffered, the failure is counted and logged once).
        """
        with self._write_lock:
            if self._tidied_on != dt.datetime.now(dt.UTC).date():
                try:  # once a UTC day: cheap, and never on a request's path
                    self.tidy()
                except OSError as exc:  # housekeeping never stops the write
                    log.warning("request log: cannot tidy %s (%s)", self.directory, exc)
            with self._lock:
                batches, self._batches = self._batches, deque()
                rows, self._rows, self._pending = self._rows, 0, 0
                self._queued = False
            if not batches:
                return None
            try:
                written = append_requests(_frame(batches), self.directory)
            except OSError as exc:
                self._failed(batches, rows, exc)
            except Exception as exc:  # noqa: BLE001 - a background thread: nothing else sees it
                self._count_failure()
                with self._lock:
                    self._count_dropped(rows)
                log.error(
                    "request log: %d rows cannot be written and are dropped (%s: %s)",
                    rows,
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                )
            else:
                dropped = self._unreported_drops()
                if dropped:  # dropped while this write lagged: say so once
                    log.warning(
                        "request log: %d oldest rows were dropped (max %d buffered)",
                        dropped,
                        self.max_buffer_rows,
                    )
                return written
            return None

    def _unreported_drops(self) -> int:
        with self._lock:
            dropped, self._reported_drops = (
                self.dropped_rows - self._reported_drops,
                self.dropped_rows,
            )
        return dropped

    def _failed(self, batches: deque[Batch], rows: int, exc: OSError) -> None:
        """Put the rows back in front of what arrived meanwhile, within the bound."""
        self._count_failure()
        with self._lock:
            batches.extend(self._batches)
            self._batches = batches
            self._rows += rows
            if self._rows > self.max_buffer_rows:
                self._trim()
            kept = self._rows
        dropped = self._unreported_drops()
        reason = exc.strerror or (str(exc).splitlines() or [type(exc).__name__])[0]
        where = exc.filename or self.directory
        log.warning(
            "request log: flush failed (%s: %s); %d rows kept for the next flush%s",
            reason,
            where,
            kept,
            f", {dropped} oldest dropped (max {self.max_buffer_rows} buffered)" if dropped else "",
        )

    def _count_failure(self) -> None:
        self.flush_failures += 1
        if self._failures is not None:
            self._failures.inc()

    def close(self) -> None:
        """Write what is left and stop the background writer."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.flush()


def _size(batch: Batch) -> int:
    return len(batch) if isinstance(batch, pd.DataFrame) else len(batch[0])


def _tail(batch: Batch, rows: int) -> Batch:
    """The newest `rows` rows of a batch."""
    if isinstance(batch, pd.DataFrame):
        return batch.iloc[len(batch) - rows :]
    ids, probs, version, stamp, columns, pids, role = batch
    start = len(ids) - rows
    return (
        ids[start:],
        probs[start:],  # raveled by `log_scored`
        version,
        stamp,
        (
            FeatureColumns.of(columns.numeric[start:], columns.categorical[start:])
            if _has_matrices(columns)
            else {name: col[start:] for name, col in columns.items()}
        ),
        pids[start:],
        role,
    )


def _frame(batches: deque[Batch]) -> pd.DataFrame | pa.Table:
    """The buffer as one table: Arrow built straight from the scored batches' arrays (the
    service's case), through pandas only when `log` added DataFrames."""
    scored = [b for b in batches if not isinstance(b, pd.DataFrame)]
    if len(scored) == len(batches):
        return _scored_table(scored)
    frames = [b for b in batches if isinstance(b, pd.DataFrame)]
    if scored:
        frames.append(_scored_table(scored).to_pandas())  # (only `log`'s callers mix them)
    return pd.concat(frames, ignore_index=True)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _has_matrices(columns: Mapping[str, np.ndarray]) -> bool:
    return isinstance(columns, FeatureColumns) and len(columns) == _WIDTH


def _feature_columns(scored: list[Scored]) -> dict[str, np.ndarray]:
    """Each feature column over these batches. `customers_to_columns`' batches carry their two
    matrices: two concatenations for the lot, not one per column."""
    if all(_has_matrices(b[4]) for b in scored):
        numeric = np.concatenate([b[4].numeric for b in scored])
        categorical = np.concatenate([b[4].categorical for b in scored])
        return {n: numeric[:, i] for i, n in enumerate(NUMERIC)} | {
            n: categorical[:, i] for i, n in enumerate(CATEGORICAL)
        }
    return {n: np.concatenate([b[4][n] for b in scored]) for n in scored[0][4]}


def _scored_table(scored: list[Scored], chunk: int = _CHUNK) -> pa.Table:
    """Buffered batches as one Arrow table: the feature columns, the customer id, the
    prediction, its id, the model version, the role and the time each batch was answered.

    The writer thread shares the GIL with the event loop, and a C call holds it to the end: one
    `np.concatenate` over 10k single-row batches held it ~15 ms, a stall of every request in
    flight (the p99 of issue 19). So the batches are joined `chunk` at a time (each call well
    under a millisecond), then the few chunks, and each column becomes Arrow once."""
    parts = [_chunk_arrays(scored[i : i + chunk]) for i in range(0, len(scored), chunk)]
    columns: dict[str, pa.Array] = {}
    for name, first in parts[0].items():
        pieces = [part[name] for part in parts]
        if isinstance(first, list):
            joined: Any = [value for piece in pieces for value in piece]
            columns[name] = pa.array(joined, pa.string())
        else:
            columns[name] = pa.array(np.concatenate(pieces), from_pandas=True)
    columns[TIME_COLUMN] = columns[TIME_COLUMN].cast(_TIME_TYPE)
    return pa.table(columns)


def _chunk_arrays(scored: list[Scored]) -> dict[str, np.ndarray | list]:
    """One chunk's columns, as NumPy arrays (numbers, categoricals) or lists (ids)."""
    sizes = [len(ids) for ids, *_ in scored]
    columns: dict[str, np.ndarray | list] = dict(_feature_columns(scored))
    columns["customer_id"] = [i for ids, *_ in scored for i in ids]
    columns[PREDICTION_COLUMN] = np.concatenate([p for _, p, *_ in scored]).astype(
        np.float64, copy=False
    )
    columns[VERSION_COLUMN] = np.repeat(np.array([v for _, _, v, *_ in scored], object), sizes)
    columns[ID_COLUMN] = [i for b in scored for i in b[5]]
    columns[ROLE_COLUMN] = np.repeat(np.array([b[6] for b in scored], object), sizes)
    columns[TIME_COLUMN] = np.repeat(np.array([b[3] for b in scored], dtype="int64"), sizes)
    return columns


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
