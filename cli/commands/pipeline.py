"""`paycycle validate` (Great Expectations suites) and `paycycle pipeline` (the Prefect flow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from paycycle import config

console = Console(stderr=True)


def validate(
    path: Annotated[
        Path | None,
        typer.Argument(help="A raw-data folder (default: data/raw) or a feature Parquet file."),
    ] = None,
    metrics: Annotated[
        Path | None, typer.Option(help="Also write a JSON summary here (the DVC metrics file).")
    ] = None,
) -> None:
    """Validate raw tables or the feature table; Data Docs go to reports/data_docs/."""
    from features.validation import validate_path, write_metrics

    settings = config.load()
    target = path or settings.raw_dir
    with console.status(f"validating {target}"):
        result = validate_path(settings, target)
    if metrics:
        write_metrics(result, settings.path(metrics))
    result.raise_for_failures()  # DataError: one line, exit 2
    table = Table(title=f"{result.evaluated} expectations passed")
    for col in ("table", "rows", "expectations"):
        table.add_column(col, justify="left" if col == "table" else "right")
    for name, rows in result.rows.items():
        table.add_row(name, f"{rows:,}", str(result.expectations.get(name, 0)))
    Console().print(table)
    console.print(f"validated {target} in {result.seconds:.1f} s; Data Docs: {result.docs_path}")


def pipeline(
    customers: Annotated[
        int | None, typer.Option(help="Customers (params: data.customers); not recorded in DVC.")
    ] = None,
    months: Annotated[int | None, typer.Option(help="Months (params: data.months).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (params: data.seed).")] = None,
    scenario: Annotated[str | None, typer.Option(help="Scenario (params: data.scenario).")] = None,
) -> None:
    """Run the Prefect data flow: simulate → DVC version → validate → features."""
    from flows.pipeline import print_result, run

    settings = config.load()
    result = run(settings, customers=customers, months=months, seed=seed, scenario=scenario)
    print_result(result, Console())


def register(app: typer.Typer) -> None:
    """Attach the pipeline commands to the main app."""
    app.command()(validate)
    app.command()(pipeline)
