"""Operator commands: `paycycle deploy` (Prefect deployments and schedules)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from paycycle import config
from paycycle.errors import ConfigError


def deploy(
    work_pool: Annotated[
        str, typer.Option(help="Prefect process work pool to run on.")
    ] = "paycycle",
) -> None:
    """Register the scheduled flows (billing, monitoring, retraining) on a Prefect server."""
    from flows.deploy import SCHEDULES, deploy_all

    settings = config.load()
    if not settings.prefect_api_url:
        raise ConfigError(
            "PREFECT_API_URL: not set; deployments need a Prefect server "
            "(e.g. `prefect server start` then PREFECT_API_URL=http://127.0.0.1:4200/api)"
        )
    deploy_all(settings.root, work_pool)
    table = Table(title=f"deployments on {settings.prefect_api_url} (pool {work_pool})")
    for col in ("deployment", "flow", "schedule"):
        table.add_column(col)
    for s in SCHEDULES:
        table.add_row(s.name, s.entrypoint, s.cron)
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command()(deploy)
