"""The `paycycle` subcommands, one module per concern; shared Rich helpers below."""

from __future__ import annotations

from collections.abc import Mapping

from rich.table import Table


def row_counts(title: str, counts: Mapping[str, int], caption: str | None = None) -> Table:
    """A two-column table (table name, row count) for simulate/load summaries."""
    table = Table(title=title, caption=caption)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in counts.items():
        table.add_row(name, f"{rows:,}")
    return table
