"""`paycycle monitor`: one drift-monitoring cycle, printing the verdict and the report path."""

from __future__ import annotations

from typing import Annotated

import typer

from paycycle.config import SCENARIOS


def monitor(
    scenario: Annotated[
        str | None,
        typer.Option(
            help=f"Simulate fresh data, this scenario in the last month ({', '.join(SCENARIOS)});"
            " default: production data (feature table vs request log or newest raw month)."
        ),
    ] = None,
    customers: Annotated[int, typer.Option(help="Simulated customers (with --scenario).")] = 5_000,
    months: Annotated[int, typer.Option(help="Simulated months (with --scenario).")] = 6,
    seed: Annotated[int | None, typer.Option(help="Simulation seed (params: data.seed).")] = None,
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain/--no-retrain",
            help="On drift (and after the cooldown) run the training flow and reload the service.",
        ),
    ] = False,
) -> None:
    """Compare the current window with the champion's reference: verdict, reasons, report path."""
    from paycycle import config
    from paycycle.errors import ConfigError

    if scenario is not None and scenario not in SCENARIOS:
        raise ConfigError(f"scenario: unknown {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    settings = config.load()
    if retrain:
        from flows.monitor import monitor_and_retrain

        out = monitor_and_retrain(
            scenario=scenario,
            customers=customers,
            months=months,
            seed=seed,
            root=str(settings.root),
        )
    else:
        from monitoring.loop import build_windows, report_name, run_report

        ref, cur = build_windows(settings, scenario, customers, months, seed)
        out = run_report(settings, ref, cur, report_name(scenario))
    typer.echo(f"verdict: {out['verdict']} (weighted drift share {out.get('share', 0):.3f})")
    for reason in out["reasons"]:
        typer.echo(f"  because {reason}")
    typer.echo(f"report: {out['html']}")
    typer.echo(f"index:  {out['index']}")
    if "action" in out:
        typer.echo(f"action: {out['action']}")


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor)
