"""`paycycle score`: batch-score every customer with the champion models (Dask or one process)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from paycycle import config
from paycycle.errors import ConfigError


def score(
    as_of: Annotated[str, typer.Option("--as-of", help="Scoring date, YYYY-MM-DD.")],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Base folder for as_of=DATE/part-NNNNN.parquet (params: scoring.out_dir)."
        ),
    ] = None,
    store: Annotated[
        bool, typer.Option("--store/--no-store", help="Also upsert into the store's scores table.")
    ] = True,
    address: Annotated[
        str | None,
        typer.Option(help="Dask scheduler, e.g. tcp://host:8786 (env: PAYCYCLE_DASK_ADDRESS)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="LocalCluster workers when no scheduler is given (params: scoring)."),
    ] = None,
    single_process: Annotated[
        bool,
        typer.Option("--single-process", help="Score partitions in this process, no Dask/Prefect."),
    ] = False,
) -> None:
    """Score churn (and recommendations) per raw partition; write Parquet and the store."""
    try:
        day = dt.date.fromisoformat(as_of)
    except ValueError:
        raise ConfigError(f"--as-of: expected a date YYYY-MM-DD, got {as_of!r}") from None
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers: expected at least 1, got {workers}")
    settings = config.load()
    console = Console(stderr=True)
    if single_process:
        from inference.batch import score_all, summarise

        start = time.perf_counter()
        results = score_all(
            settings,
            day,
            out,
            store,
            progress=lambda r: console.print(f"{r.part}: {r.rows:,} customers, {r.seconds:.1f}s"),
        )
        summary = summarise(results, time.perf_counter() - start)
    else:
        from flows.score import run_batch_score

        summary = run_batch_score(
            day, str(out) if out else None, store, address=address, workers=workers
        )
    console.print(
        f"{day}: {summary['rows']:,} customers in {summary['partitions']} partitions, "
        f"{summary['seconds']:.1f}s ({summary['customers_per_min']:,.0f}/min), "
        f"{summary['workers']} worker(s), peak RSS {summary['peak_rss_gib_per_worker']:.2f} GiB, "
        f"{summary['stored']:,} rows upserted"
    )


def register(app: typer.Typer) -> None:
    """Attach `score` to the main app."""
    app.command()(score)
