"""`paycycle saves` (settle cancel-page saves) and `paycycle uplift` (offer uplift vs holdout)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from paycycle import config
from paycycle.errors import ConfigError


def _day(value: str | None, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value) if value else dt.datetime.now(dt.UTC).date()
    except ValueError:
        raise ConfigError(f"{name}: expected a date YYYY-MM-DD, got {value!r}") from None


def saves(
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Settle visits at least save_days before this.")
    ] = None,
) -> None:
    """Count cancel-page saves: still active `retention.save_days` after the visit."""
    from paycycle.store import make_engine
    from retention.saves import check_saves

    settings = config.load()
    engine = make_engine(settings.db_url)
    try:
        table = check_saves(engine, _day(as_of, "--as-of"), settings.params.retention.save_days)
    finally:
        engine.dispose()
    out = Table(title="cancel-page saves")
    for col in ("reason", "offer", "settled", "saved", "save rate"):
        out.add_column(col)
    for r in table.to_dict("records"):
        out.add_row(
            r["reason"], r["offer"], str(r["settled"]), str(r["saved"]), f"{r['save_rate']:.0%}"
        )
    Console().print(out)


def uplift(
    truth: Annotated[bool, typer.Option(help="Also check against the simulator's truth.")] = True,
) -> None:
    """Per-offer uplift vs the holdout with CIs; writes reports/uplift/uplift.{json,md}."""
    from paycycle.tables import read_table
    from retention.uplift import uplift_report

    settings = config.load()
    r = settings.params.retention
    events = {k: read_table(settings.raw_dir, k) for k in ("offers", "subscriptions")}
    table = uplift_report(
        events, r, settings.path(r.reports_dir), settings.truth_dir if truth else None
    )
    Console().print(table.round(4).to_string())


def register(app: typer.Typer) -> None:
    """Attach `saves` and `uplift` to the main app."""
    app.command("saves")(saves)
    app.command("uplift")(uplift)
