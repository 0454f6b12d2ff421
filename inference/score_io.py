"""Batch-scoring I/O: raw partitions in, score partitions (Parquet) and store rows out.

A partition is one `part-NNNNN` of the simulator's raw tables: the same customer-id range in
every table. Scores go to `<out_dir>/as_of=DATE/part-NNNNN.parquet` (written to a temporary
name, then renamed over the old file) and to the store's `scores` table (upsert by
(customer_id, as_of) in one transaction), so writing a partition twice leaves one copy.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from paycycle.config import Settings
from paycycle.errors import ConfigError, DataError

PARTITION_TABLE = "customers"  # its parts define the partitions
SCORE_COLUMNS = (
    "customer_id",
    "as_of",
    "churn_probability",
    "recommendations",
    "churn_model_version",
    "recommender_model_version",
    "prediction_id",
)


def list_partitions(raw_dir: Path) -> list[str]:
    """Names (`part-NNNNN`) of the raw partitions, checked present in every event table.

    Raises:
        DataError: no parts, or an event table lacks a part the customers table has.
    """
    from features.build import EVENT_TABLES

    parts = sorted(p.stem for p in (raw_dir / PARTITION_TABLE).glob("part-*.parquet"))
    if not parts:
        raise DataError(
            f"{raw_dir / PARTITION_TABLE}: no Parquet parts found (run `paycycle simulate`)"
        )
    for table in EVENT_TABLES:
        for part in parts:
            if not (raw_dir / table / f"{part}.parquet").exists():
                raise DataError(f"{raw_dir / table / part}.parquet: partition file is missing")
    return parts


def load_partition(raw_dir: Path, part: str) -> dict[str, pd.DataFrame]:
    """The event tables of one partition (same dtypes as `paycycle.tables.read_table`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from features.build import EVENT_TABLES

    events = {}
    for table in EVENT_TABLES:
        path = raw_dir / table / f"{part}.parquet"
        try:
            events[table] = pq.read_table(path).to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: unreadable Parquet ({str(exc).splitlines()[0]})") from None
    return events


def partition_dir(out_dir: Path, as_of: dt.date) -> Path:
    """`<out_dir>/as_of=YYYY-MM-DD`: one folder per scoring date (Hive-style partitioning)."""
    return Path(out_dir) / f"as_of={as_of.isoformat()}"


def clear_stale(out_dir: Path, as_of: dt.date, parts: Iterable[str]) -> list[Path]:
    """Remove partition files of `as_of` that this run will not write (an older chunking)."""
    keep = {f"{p}.parquet" for p in parts}
    stale = [p for p in partition_dir(out_dir, as_of).glob("part-*") if p.name not in keep]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_partition(scores: pd.DataFrame, out_dir: Path, as_of: dt.date, part: str) -> Path:
    """Write `<out_dir>/as_of=DATE/<part>.parquet`, replacing any earlier file atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("customer_id", pa.int64()),
            ("as_of", pa.date32()),
            ("churn_probability", pa.float64()),
            ("recommendations", pa.string()),
            ("churn_model_version", pa.string()),
            ("recommender_model_version", pa.string()),
            ("prediction_id", pa.string()),
        ]
    )
    folder = partition_dir(out_dir, as_of)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{part}.parquet"
    tmp = folder / f".{part}.{os.getpid()}.tmp"
    table = pa.Table.from_pandas(scores[list(SCORE_COLUMNS)], schema=schema, preserve_index=False)
    pq.write_table(table.replace_schema_metadata(None), tmp, compression="zstd")
    os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    return path


def upsert_scores(engine: Any, scores: pd.DataFrame, source: Path) -> int:
    """Insert or replace `scores` rows by (customer_id, as_of), in one transaction.

    PostgreSQL: COPY into a temp table, then the loader's merge (`paycycle.loader.merge_sql`:
    UPDATE the rows that changed, INSERT the new ones); SQLite: `executemany` of an upsert.

    Args:
        engine: the store (`paycycle.store.make_engine`), migrated to head.
        scores: rows with `SCORE_COLUMNS`.
        source: the partition file, named in errors.

    Returns:
        Rows written.

    Raises:
        DataError: the database rejected the rows (e.g. a customer missing from `customers`).
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    from sqlalchemy import bindparam
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert
    from sqlalchemy.exc import DBAPIError

    from paycycle.loader import _rejected, merge_sql, staging_sql
    from paycycle.store import Score

    if scores.empty:
        return 0
    table = Score.__table__
    cols = list(SCORE_COLUMNS)
    with engine.begin() as conn:
        try:
            if conn.dialect.name == "postgresql":
                q = conn.dialect.identifier_preparer.quote
                temp = q("_load_scores")
                conn.exec_driver_sql(staging_sql(q, table, temp))
                data = pa.Table.from_pandas(scores[cols], preserve_index=False)
                sink = pa.BufferOutputStream()
                pa_csv.write_csv(data, sink, pa_csv.WriteOptions(include_header=False))
                copy_sql = f"COPY {temp} ({', '.join(q(c) for c in cols)}) FROM STDIN (FORMAT csv)"
                raw = conn.connection.driver_connection
                with raw.cursor() as cur, cur.copy(copy_sql) as copy:
                    copy.write(memoryview(sink.getvalue()))
                for statement in merge_sql(q, table, temp):
                    conn.exec_driver_sql(statement)
            else:
                # driver-level executemany as in the loader: JSON text and ISO dates go in as
                # they are (through the JSON type, None would become the JSON text 'null')
                stmt = sqlite_insert(table).values({c: bindparam(c) for c in cols})
                stmt = stmt.on_conflict_do_update(
                    index_elements=["customer_id", "as_of"],
                    set_={c: stmt.excluded[c] for c in [*cols[2:], "created_at"]},
                )
                compiled = stmt.compile(dialect=conn.dialect)
                frame = scores[cols].astype(object).where(scores[cols].notna(), None)
                frame["as_of"] = [d.isoformat() for d in pd.to_datetime(frame["as_of"]).dt.date]
                now = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # UTCDateTime's SQLite form
                frame["created_at"] = now.isoformat(sep=" ")
                rows = list(frame[list(compiled.positiontup)].itertuples(index=False, name=None))
                conn.exec_driver_sql(str(compiled), rows)
        except DBAPIError as exc:
            raise _rejected(source, exc) from None
        except conn.dialect.loaded_dbapi.Error as exc:  # raised by psycopg's COPY directly
            raise _rejected(source, exc) from None
    return len(scores)


def check_store(settings: Settings) -> None:
    """Fail early, in one line, when the store is not migrated.

    Raises:
        ConfigError: the database is behind the shipped migrations.
    """
    from paycycle.store import current_revision, head_revision, safe_url

    if current_revision(settings) != head_revision():
        raise ConfigError(
            f"database {safe_url(settings.db_url)}: not at the head revision "
            "(run `paycycle db upgrade` and `paycycle load`)"
        )


def read_scores(out_dir: Path, as_of: dt.date) -> pd.DataFrame:
    """All partition files of `as_of`, concatenated and sorted by customer."""
    import pyarrow.parquet as pq

    files = sorted(partition_dir(out_dir, as_of).glob("part-*.parquet"))
    if not files:
        raise DataError(f"{partition_dir(out_dir, as_of)}: no score partitions found")
    frame = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
    return frame.sort_values("customer_id", kind="stable").reset_index(drop=True)
