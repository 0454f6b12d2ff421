"""`paycycle simulate` (and, from the store module, `db` and `load`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from cli.commands import row_counts
from paycycle import config
from paycycle.config import SCENARIOS

console = Console(stderr=True)


def simulate(
    customers: Annotated[
        int | None, typer.Option(help="Number of customers (params: data.customers).")
    ] = None,
    months: Annotated[
        int | None, typer.Option(help="Months to simulate (params: data.months).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (params: data.seed).")] = None,
    scenario: Annotated[str | None, typer.Option(help=f"One of: {', '.join(SCENARIOS)}.")] = None,
    shift_month: Annotated[
        int | None, typer.Option(help="Month the scenario starts (default: last).")
    ] = None,
) -> None:
    """Generate simulated subscription data under data/raw and its ground truth under data/truth."""
    from paycycle.sim.simulator import SimSpec
    from paycycle.sim.simulator import simulate as run_simulation

    settings = config.load()
    d = settings.params.data
    spec = SimSpec(
        customers=d.customers if customers is None else customers,
        months=d.months if months is None else months,
        seed=d.seed if seed is None else seed,
        start_date=d.start_date,
        scenario=d.scenario if scenario is None else scenario,
        chunk_customers=d.chunk_customers,
        shift_month=shift_month,
    )
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("simulating customers", total=spec.customers)
        summary = run_simulation(
            spec,
            settings.raw_dir,
            settings.truth_dir,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    title = (
        f"simulated {spec.customers} customers × {spec.months} months "
        f"(seed {spec.seed}, {spec.scenario})"
    )
    Console().print(row_counts(title, dict(sorted(summary.rows.items()))))
    console.print(f"raw data: {settings.raw_dir}  truth: {settings.truth_dir}")


def features(
    snapshots: Annotated[
        int | None, typer.Option(help="Monthly snapshots (params: features.snapshots).")
    ] = None,
) -> None:
    """Build the point-in-time feature table (with labels) from data/raw."""
    from features.table import snapshot_dates, write_feature_table

    settings = config.load()
    fp, d = settings.params.features, settings.params.data
    dates = snapshot_dates(d.start_date, d.months, snapshots or fp.snapshots, fp.horizon_days)
    out = settings.path(fp.path)
    with console.status(f"building features for {len(dates)} snapshots"):
        table = write_feature_table(settings.raw_dir, out, dates)
    console.print(
        f"{len(table):,} rows × {table.shape[1]} columns, as_of {dates[0]} … {dates[-1]} → {out}"
    )


def register(app: typer.Typer) -> None:
    """Attach the data commands to the main app."""
    app.command()(simulate)
    app.command()(features)
