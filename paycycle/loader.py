"""Bulk load of the simulator's raw Parquet into the store, validated first, in one transaction.

`load_raw` first opens every part of every table and checks its schema against the models in
`paycycle.store` (Parquet footers only: cheap), so a missing column, a wrong type or a truncated
file fails before anything is written. It then streams record batches in foreign-key order and
upserts them by primary key, all in one transaction:

* PostgreSQL: each batch is written as CSV by Arrow and `COPY`-ed (psycopg 3) straight into a
  table that was empty, or else into a temporary (session-private) staging table merged per
  part by an `UPDATE ... FROM` of the rows that changed and an `INSERT ... ON CONFLICT (pk) DO
  NOTHING` of the new ones (rows that did not change are neither rewritten nor locked);
* SQLite: `executemany` of `INSERT ... ON CONFLICT (pk) DO UPDATE` per batch.

**Loading a live store.** Only a first load into an empty store (every raw table empty, so
nothing can be served from it yet) takes the fast path: foreign keys of big tables and plain
indexes of empty big tables are dropped and re-added before the commit, which checks them in
one join instead of one trigger call per row, at the price of ACCESS EXCLUSIVE locks on those
tables (and the tables they reference) until the commit. Once any raw table holds rows, the
store is live (the API's `/cancel-intent` locks its customer's row FOR NO KEY UPDATE, reads
subscriptions and plans and inserts into `cancel_intents`): the load then runs no DDL at all. It
only takes ROW EXCLUSIVE table locks, and FOR NO KEY UPDATE row locks on the rows it changes (the
merge never changes a primary key; rows it leaves as they were are not locked), so readers and
writers keep working while it runs; foreign keys are checked per row instead. A request that
locks a row the load changes waits for the load's commit: one transaction is the price of a load
that lands whole or not at all.
Every lock the load asks for waits at most `lock_timeout_ms` (`SET LOCAL lock_timeout`), so a
load facing a session that holds a conflicting lock (a migration, a manual `LOCK TABLE`) ends with
one line (`UnavailableError`) instead of queueing, which would stall every reader behind it.
A live load refreshes statistics (ANALYZE) after its commit, skipping it on a lock timeout.

Loading the same data twice leaves the tables as they were. Rows already in the database but
absent from the Parquet are kept (an upsert, not a replace).

`migrate_and_load` brings a project's store to the head migration and loads its `data/raw`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sqlalchemy import Boolean, Connection, Date, Double, Engine, Float, Integer, String, Table
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from paycycle.errors import ConfigError, DataError, UnavailableError
from paycycle.store import RAW_LOAD_ORDER, RAW_MODELS, make_engine, upgrade

if TYPE_CHECKING:
    from paycycle.config import Settings

Progress = Callable[[str, int, int], None]  # (table, rows done, rows in table)
BATCH_ROWS = 50_000
PG_FLUSH_ROWS = 500_000  # merge the temp table into the target at least this often
FK_BULK_ROWS = 50_000  # from this many rows, re-check foreign keys once instead of per row
LOCK_TIMEOUT_MS = 5_000  # default of params `store.lock_timeout_ms`
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL SQLSTATE of a lock_timeout


@dataclass(frozen=True)
class TableScan:
    """One raw table as found on disk: its validated parts and their total row count."""

    name: str
    parts: tuple[Path, ...]
    rows: int


def _arrow_type(column: object) -> tuple[pa.DataType, str]:
    """The Arrow type a store column is loaded as, and the family name used in messages."""
    t = column.type  # type: ignore[attr-defined]
    if isinstance(t, Integer):
        return pa.int64(), "integer"
    if isinstance(t, Double | Float):
        return pa.float64(), "floating point"
    if isinstance(t, Boolean):
        return pa.bool_(), "boolean"
    if isinstance(t, Date):
        return pa.date32(), "date or timestamp"
    if isinstance(t, String):
        return pa.string(), "string"
    raise TypeError(f"{column}: no Arrow mapping for {t!r}")  # pragma: no cover - models only


def _compatible(found: pa.DataType, target: pa.DataType, nullable: bool) -> bool:
    if pa.types.is_dictionary(found):
        found = found.value_type
    if pa.types.is_null(found):
        return nullable
    if target == pa.int64():
        return pa.types.is_integer(found)
    if target == pa.float64():
        return pa.types.is_floating(found) or pa.types.is_integer(found)
    if target == pa.bool_():
        return pa.types.is_boolean(found)
    if target == pa.date32():
        return pa.types.is_timestamp(found) or pa.types.is_date(found)
    return pa.types.is_string(found) or pa.types.is_large_string(found)


def _check_part(path: Path, table: Table) -> int:
    """Validate one part's footer against `table`; returns its row count."""
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: unreadable Parquet ({str(exc).splitlines()[0]})") from None
    meta = pf.metadata
    if meta.num_rows == 0:
        return 0  # an empty chunk carries no rows and, from pandas, no usable types
    schema = pf.schema_arrow
    leaf = {meta.schema.column(j).path: j for j in range(meta.num_columns)}
    for col in table.columns:
        if col.name not in schema.names:
            raise DataError(f"{path}: column {col.name!r} is missing (table {table.name})")
        found = schema.field(col.name).type
        target, family = _arrow_type(col)
        if not _compatible(found, target, bool(col.nullable)):
            raise DataError(
                f"{path}: column {col.name!r} has type {found}, expected {family} "
                f"(table {table.name})"
            )
        if not col.nullable and col.name in leaf:
            for g in range(meta.num_row_groups):
                stats = meta.row_group(g).column(leaf[col.name]).statistics
                if stats is not None and stats.has_null_count and stats.null_count > 0:
                    raise DataError(
                        f"{path}: column {col.name!r} has {stats.null_count} null values, "
                        f"but {table.name}.{col.name} is required"
                    )
    return meta.num_rows


def scan_raw(raw_dir: Path) -> list[TableScan]:
    """Find and validate every raw table's parts (footers only), in foreign-key order.

    Raises:
        DataError: a table has no parts, or a part is unreadable, lacks a column, has a column
            of the wrong type or nulls in a required column; the message names file and column.
    """
    scans = []
    for name in RAW_LOAD_ORDER:
        parts = tuple(sorted((raw_dir / name).glob("part-*.parquet")))
        if not parts:
            raise DataError(f"{raw_dir / name}: no Parquet parts found (run `paycycle simulate`)")
        table = RAW_MODELS[name].__table__
        rows = sum(_check_part(p, table) for p in parts)  # type: ignore[arg-type]
        scans.append(TableScan(name, parts, rows))
    return scans


def _conform(batch: pa.RecordBatch, table: Table, path: Path) -> pa.Table:
    """Cast a batch to the store's column types (dates from midnight timestamps)."""
    arrays, fields = [], []
    for col in table.columns:
        arr = batch.column(col.name)
        target, _ = _arrow_type(col)
        try:
            if pa.types.is_dictionary(arr.type):
                arr = arr.dictionary_decode()
            if pa.types.is_timestamp(arr.type) and target == pa.date32():
                day = pc.cast(arr, pa.date32())
                if pc.all(pc.equal(pc.cast(day, arr.type), arr)).as_py() is False:
                    raise DataError(
                        f"{path}: column {col.name!r} has a time of day; expected dates"
                    )
                arr = day
            else:
                arr = pc.cast(arr, target)
        except pa.ArrowException as exc:
            raise DataError(f"{path}: column {col.name!r}: {str(exc).splitlines()[0]}") from None
        arrays.append(arr)
        fields.append(pa.field(col.name, target, nullable=bool(col.nullable)))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _batches(scan: TableScan, table: Table) -> Iterator[tuple[Path, pa.Table]]:
    names = [c.name for c in table.columns]
    for path in scan.parts:
        try:
            pf = pq.ParquetFile(path)
            if pf.metadata.num_rows == 0:
                continue
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=names):
                yield path, _conform(batch, table, path)
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{path}: unreadable Parquet ({str(exc).splitlines()[0]})") from None


def _is_lock_timeout(exc: Exception) -> bool:
    orig = getattr(exc, "orig", None) or exc
    return getattr(orig, "sqlstate", None) == LOCK_NOT_AVAILABLE


def _busy(timeout_ms: int) -> UnavailableError:
    return UnavailableError(
        f"store busy: another session held a lock the load needs for more than {timeout_ms} ms "
        "(store.lock_timeout_ms); nothing was loaded, retry later"
    )


def _rejected(path: Path, exc: Exception) -> Exception:
    """A rejected part as a DataError naming it; a lock timeout stays as is (see `load_raw`)."""
    if _is_lock_timeout(exc):
        return exc
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return DataError(f"{path}: rejected by the database ({detail})")


def _load_sqlite(conn: Connection, scan: TableScan, table: Table, progress: Progress) -> None:
    pk = [c.name for c in table.primary_key.columns]
    stmt = sqlite_insert(table)
    rest = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in pk}
    stmt = stmt.on_conflict_do_update(index_elements=pk, set_=rest) if rest else stmt
    sql = str(stmt.compile(dialect=conn.dialect))
    done = 0
    for path, data in _batches(scan, table):
        # SQLAlchemy's Date type stores ISO strings in SQLite; Arrow formats them in bulk
        cols = [pc.cast(a, pa.string()) if a.type == pa.date32() else a for a in data.itercolumns()]
        rows = list(zip(*(c.to_pylist() for c in cols), strict=True))
        try:
            conn.exec_driver_sql(sql, rows)
        except DBAPIError as exc:
            raise _rejected(path, exc) from None
        done += data.num_rows
        progress(scan.name, done, scan.rows)


def staging_sql(q: Callable[[str], str], table: Table, temp: str) -> str:
    """A session-private staging table shaped like `table`, dropped at the commit.

    It keeps the primary key, so a part repeating a key fails at its COPY (a DataError naming
    the part), as one `INSERT ... ON CONFLICT DO UPDATE` of both rows did before `merge_sql`
    split the merge in two (an INSERT ... DO NOTHING would keep one of them silently).
    """
    pk = ", ".join(q(c.name) for c in table.primary_key.columns)
    return (
        f"CREATE TEMP TABLE {temp} (LIKE {q(table.name)} INCLUDING DEFAULTS, PRIMARY KEY ({pk})) "
        "ON COMMIT DROP"
    )


def merge_sql(q: Callable[[str], str], table: Table, temp: str) -> list[str]:
    """Statements merging the staging table into the target by primary key: an UPDATE of the
    rows that changed, then an INSERT of the new ones.

    Not one `INSERT ... ON CONFLICT DO UPDATE ... WHERE changed`: that locks every conflicting
    row (FOR NO KEY UPDATE) until the commit, changed or not, so a request locking a customer
    (`/cancel-intent`) waited for the rest of a load that did not change that customer.
    """
    target = q(table.name)
    cols = [q(c.name) for c in table.columns]
    pk = [q(c.name) for c in table.primary_key.columns]
    rest = [c for c in cols if c not in pk]
    insert = (
        f"INSERT INTO {target} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM {temp} "
        f"ON CONFLICT ({', '.join(pk)}) DO NOTHING"
    )
    if not rest:
        return [insert]
    old = ", ".join(f"{target}.{c}" for c in rest)
    new = ", ".join(f"s.{c}" for c in rest)
    sets = ", ".join(f"{c} = s.{c}" for c in rest)
    match = " AND ".join(f"{target}.{c} = s.{c}" for c in pk)
    update = (
        f"UPDATE {target} SET {sets} FROM {temp} AS s "
        f"WHERE {match} AND ({old}) IS DISTINCT FROM ({new})"
    )
    return [update, insert]


def _load_postgres(
    conn: Connection, scan: TableScan, table: Table, progress: Progress, bulk: bool
) -> None:
    """COPY each batch; straight into an empty table, else into a temp table merged per part.

    `bulk` (first load into an empty store only) lets an empty big table drop its plain indexes
    for the COPY and rebuild them once at the end.
    """
    q = conn.dialect.identifier_preparer.quote
    target = q(table.name)
    cols = ", ".join(q(c.name) for c in table.columns)
    empty = not conn.exec_driver_sql(f"SELECT EXISTS (SELECT 1 FROM {target})").scalar()
    dest = target if empty else q(f"_load_{table.name}")
    drop = bulk and empty and scan.rows >= FK_BULK_ROWS
    indexes = _drop_indexes(conn, table.name) if drop else []
    if not empty:
        conn.exec_driver_sql(staging_sql(q, table, dest))
    merge = merge_sql(q, table, dest)
    copy_sql = f"COPY {dest} ({cols}) FROM STDIN (FORMAT csv)"
    raw = conn.connection.driver_connection
    dbapi_error = conn.dialect.loaded_dbapi.Error
    options = pa_csv.WriteOptions(include_header=False)  # strings quoted, NULL an empty field
    done, pending, last = 0, 0, None

    def flush(path: Path) -> None:
        try:
            for statement in merge:
                conn.exec_driver_sql(statement)
            conn.exec_driver_sql(f"TRUNCATE {dest}")
        except DBAPIError as exc:
            raise _rejected(path, exc) from None

    for path, data in _batches(scan, table):
        if not empty and last is not None and path != last:
            flush(last)  # one merge per part, so a rejected row points at its file
            pending = 0
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(data, sink, options)
        try:
            with raw.cursor() as cur, cur.copy(copy_sql) as copy:
                copy.write(memoryview(sink.getvalue()))
        except dbapi_error as exc:
            raise _rejected(path, exc) from None
        done += data.num_rows
        pending += data.num_rows
        last = path
        if not empty and pending >= PG_FLUSH_ROWS:
            flush(path)
            pending = 0
        progress(scan.name, done, scan.rows)
    if not empty and last is not None and pending:
        flush(last)
    for definition in indexes:  # one sorted build beats maintaining the index row by row
        conn.exec_driver_sql(definition)


def _drop_indexes(conn: Connection, table: str) -> list[str]:
    """Drop `table`'s plain (non-unique, non-constraint) indexes; returns their definitions."""
    rows = conn.execute(
        sql_text(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "WHERE t.relname = :table AND n.nspname = current_schema() AND NOT x.indisunique "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
        ),
        {"table": table},
    ).all()
    q = conn.dialect.identifier_preparer.quote
    for name, _ in rows:
        conn.exec_driver_sql(f"DROP INDEX {q(name)}")
    return [definition for _, definition in rows]


def _drop_foreign_keys(conn: Connection, tables: list[str]) -> list[tuple[str, str, str]]:
    """Drop the foreign keys of `tables` (re-added, and checked in one pass, by
    `_restore_foreign_keys`): per-row trigger checks would cost more than the load itself."""
    rows = conn.execute(
        sql_text(
            "SELECT t.relname, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
            "WHERE c.contype = 'f' AND n.nspname = current_schema() AND t.relname = ANY(:names) "
            "ORDER BY t.relname, c.conname"
        ),
        {"names": tables},
    ).all()
    q = conn.dialect.identifier_preparer.quote
    for table, name, _ in rows:
        conn.exec_driver_sql(f"ALTER TABLE {q(table)} DROP CONSTRAINT {q(name)}")
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _restore_foreign_keys(conn: Connection, raw_dir: Path, fks: list[tuple[str, str, str]]) -> None:
    q = conn.dialect.identifier_preparer.quote
    for table, name, definition in fks:
        try:
            conn.exec_driver_sql(f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(name)} {definition}")
        except DBAPIError as exc:
            raise _rejected(raw_dir / table, exc) from None


def _is_live(conn: Connection) -> bool:
    """Whether any raw table holds rows (then something may be serving from the store)."""
    q = conn.dialect.identifier_preparer.quote
    probe = " OR ".join(f"EXISTS (SELECT 1 FROM {q(t)})" for t in RAW_LOAD_ORDER)
    return bool(conn.exec_driver_sql(f"SELECT {probe}").scalar())


def load_raw(
    engine: Engine,
    raw_dir: Path,
    progress: Progress | None = None,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
) -> dict[str, int]:
    """Validate and upsert every raw table under `raw_dir` into the store, in one transaction.

    On PostgreSQL, a first load into an empty store drops the foreign keys of tables receiving
    at least `FK_BULK_ROWS` rows and re-adds (and so re-checks) them before the commit, locking
    those tables for the duration; a load into a live store runs no DDL and blocks neither
    readers nor writers (module docstring). Every lock waits at most `lock_timeout_ms`.

    Args:
        engine: from `paycycle.store.make_engine`; the schema must be at the head revision
            (`paycycle.store.upgrade`).
        raw_dir: the simulator's raw folder (`<table>/part-NNNNN.parquet`).
        progress: called after each batch with (table, rows loaded, rows in that table).
        lock_timeout_ms: PostgreSQL `lock_timeout` of the load (params `store.lock_timeout_ms`).

    Returns:
        Rows per raw table in the database after the load.

    Raises:
        DataError: a part is missing, unreadable or of the wrong schema (checked before any
            write), or the database rejected a part's rows; nothing is committed then.
        UnavailableError: a lock the load needs stayed held by another session for longer than
            `lock_timeout_ms`; nothing is committed then.
    """
    if lock_timeout_ms < 1:
        raise ConfigError(f"lock_timeout_ms: must be at least 1 ms, got {lock_timeout_ms}")
    scans = scan_raw(raw_dir)
    report = progress or (lambda *_: None)
    try:
        return _load_all(engine, raw_dir, scans, report, lock_timeout_ms)
    except Exception as exc:
        if _is_lock_timeout(exc):
            raise _busy(lock_timeout_ms) from None
        raise


def _load_all(
    engine: Engine, raw_dir: Path, scans: list[TableScan], report: Progress, lock_timeout_ms: int
) -> dict[str, int]:
    live = False
    with engine.begin() as conn:
        backend = conn.dialect.name
        if backend not in ("postgresql", "sqlite"):
            raise DataError(f"bulk load supports PostgreSQL and SQLite, not {backend}")
        fks, bulk = [], False
        if backend == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
            conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
            conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
            live = _is_live(conn)
            bulk = not live  # DDL (ACCESS EXCLUSIVE) only while nothing can be served
            if bulk:
                fks = _drop_foreign_keys(conn, [s.name for s in scans if s.rows >= FK_BULK_ROWS])
        for scan in scans:
            table = RAW_MODELS[scan.name].__table__
            if backend == "postgresql":
                _load_postgres(conn, scan, table, report, bulk)  # type: ignore[arg-type]
            else:
                _load_sqlite(conn, scan, table, report)  # type: ignore[arg-type]
            report(scan.name, scan.rows, scan.rows)
        if bulk:
            _restore_foreign_keys(conn, raw_dir, fks)
            conn.exec_driver_sql("ANALYZE " + ", ".join(RAW_LOAD_ORDER))
        counts = {
            s.name: conn.execute(sql_text(f'SELECT count(*) FROM "{s.name}"')).scalar_one()
            for s in scans
        }
    if live:
        _analyze_after_commit(engine, lock_timeout_ms)
    return counts


def _analyze_after_commit(engine: Engine, lock_timeout_ms: int) -> None:
    """Refresh planner statistics after a live load, outside its transaction: ANALYZE waits
    for a running (anti-wraparound) VACUUM, and committed data must not roll back for
    statistics that autovacuum refreshes anyway."""
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}")
            conn.exec_driver_sql("ANALYZE " + ", ".join(RAW_LOAD_ORDER))
    except DBAPIError as exc:
        if not _is_lock_timeout(exc):
            raise


def migrate_and_load(settings: Settings) -> dict[str, int]:
    """Bring the project's store to the head migration and load its raw tables into it."""
    upgrade(settings)
    engine = make_engine(settings.db_url)
    try:
        return load_raw(
            engine, settings.raw_dir, lock_timeout_ms=settings.params.store.lock_timeout_ms
        )
    finally:
        engine.dispose()
