"""`paycycle notify`: run the billing monitor for one day and print counts by kind;
`paycycle deliver`: only deliver what is due in the outbox (retries past their backoff)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from paycycle import config
from paycycle.errors import ConfigError

CHANNELS = ("file", "smtp", "webhook")
ChannelOption = Annotated[
    str | None, typer.Option(help="file | smtp | webhook (params: notify.channel).")
]


def _check_channel(channel: str | None) -> None:
    if channel is not None and channel not in CHANNELS:
        raise ConfigError(f"--channel: unknown {channel!r}; choose {', '.join(CHANNELS)}")


def notify(
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Day to process, YYYY-MM-DD (default: today).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Compute the notices only; do not enqueue or send.")
    ] = False,
    channel: ChannelOption = None,
) -> None:
    """Compute the day's billing notices, enqueue them in the outbox and deliver them."""
    from notify.daily import run_day

    _check_channel(channel)
    try:
        day = dt.date.fromisoformat(as_of) if as_of else dt.datetime.now(dt.UTC).date()
    except ValueError:
        raise ConfigError(f"--as-of: expected a date YYYY-MM-DD, got {as_of!r}") from None
    settings = config.load()
    report = run_day(settings, day, channel=channel, dry_run=dry_run)
    mode = "dry run" if dry_run else f"channel {report.channel}"
    table = Table(title=f"notices for {day} ({mode})")
    cols = ["due"] if dry_run else ["due", "sent", "failed", "dead", "pending"]
    table.add_column("kind")
    for col in cols:
        table.add_column(col, justify="right")
    for row in report.counts.to_dict("records"):
        table.add_row(row["kind"], *(f"{row[c]:,}" for c in cols))
    table.add_row("total", *(f"{report.counts[c].sum():,}" for c in cols), style="bold")
    Console().print(table)
    if report.enqueued is not None:
        e = report.enqueued
        Console(stderr=True).print(
            f"enqueued {e.inserted:,} (already in outbox {e.duplicates:,}, bad data {e.dead:,})"
        )
    if report.delivery is not None and report.delivery.errors:
        Console(stderr=True).print(f"delivery errors: {report.delivery.errors}")


def deliver(
    channel: ChannelOption = None,
) -> None:
    """Deliver the outbox's due notices (new, or failed past their backoff); compute nothing."""
    from notify.daily import deliver_due

    _check_channel(channel)
    stats = deliver_due(config.load(), channel)
    Console().print(
        f"sent {stats.sent:,} (already delivered {stats.already_delivered:,}), "
        f"failed {stats.failed:,} (will retry), dead {stats.dead:,}"
    )
    if stats.errors:
        Console(stderr=True).print(f"delivery errors: {stats.errors}")


def register(app: typer.Typer) -> None:
    """Attach `notify` and `deliver` to the main app."""
    app.command()(notify)
    app.command()(deliver)
