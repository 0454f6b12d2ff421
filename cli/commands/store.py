"""`paycycle db upgrade|current` and `paycycle load`: the subscription store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cli.commands import row_counts
from paycycle import config
from paycycle.errors import DataError, UnavailableError

console = Console(stderr=True)
db_app = typer.Typer(help="Subscription store schema (Alembic migrations).", no_args_is_help=True)


@contextmanager
def _database_errors(url: str) -> Iterator[None]:
    """Turn an unreachable database into a one-line user error."""
    from sqlalchemy.exc import OperationalError

    from paycycle.store import safe_url

    try:
        yield
    except OperationalError as exc:
        detail = str(exc.orig or exc).strip().splitlines()[0]
        raise UnavailableError(f"database {safe_url(url)}: {detail}") from None


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Create or migrate the store's tables (a no-op when already at the target)."""
    from paycycle.store import current_revision, safe_url, upgrade

    settings = config.load()
    with _database_errors(settings.db_url):
        before = current_revision(settings)
        after = upgrade(settings, revision)
    change = "already at" if before == after else f"{before or 'empty'} →"
    console.print(f"{safe_url(settings.db_url)}: {change} {after}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the newest one shipped with the code."""
    from paycycle.store import current_revision, head_revision, safe_url

    settings = config.load()
    with _database_errors(settings.db_url):
        current = current_revision(settings)
    head = head_revision()
    state = "up to date" if current == head else "needs `paycycle db upgrade`"
    typer.echo(f"{safe_url(settings.db_url)}: {current or 'empty'} (head {head}, {state})")


def load(
    raw_dir: Annotated[
        Path | None, typer.Option(help="Simulator output to load (params: data.raw_dir).")
    ] = None,
) -> None:
    """Validate data/raw and upsert it into the store in one transaction (migrates first).

    A live store keeps serving during the load (no DDL on it); a lock held elsewhere for more
    than params store.lock_timeout_ms ends the load with one line, nothing loaded.
    """
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from paycycle.loader import load_raw
    from paycycle.store import make_engine, safe_url, upgrade

    settings = config.load()
    source = settings.path(raw_dir) if raw_dir else settings.raw_dir
    if not source.is_dir():
        raise DataError(f"{source}: no such folder (run `paycycle simulate` first)")
    with _database_errors(settings.db_url):
        upgrade(settings)
        engine = make_engine(settings.db_url)
        tasks: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:

                def report(table: str, done: int, total: int) -> None:
                    if table not in tasks:
                        tasks[table] = bar.add_task(f"loading {table}", total=total)
                    bar.update(tasks[table], completed=done)

                counts = load_raw(engine, source, report, settings.params.store.lock_timeout_ms)
        finally:
            engine.dispose()
    seconds = time.perf_counter() - started
    Console().print(row_counts("rows in the store", counts, safe_url(settings.db_url)))
    console.print(f"loaded {source} in {seconds:.1f} s")


def register(app: typer.Typer) -> None:
    """Attach `db` and `load` to the main app."""
    app.add_typer(db_app, name="db")
    app.command()(load)
