"""The feature table DVC tracks: stacked monthly snapshots with labels, written as Parquet."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from features.build import build_training_set, load_events
from paycycle.calendar import month_starts


def snapshot_dates(
    start: dt.date, months: int, snapshots: int, horizon_days: int = 30
) -> list[str]:
    """The last `snapshots` month starts whose label window ends inside the simulated period."""
    starts = month_starts(start, months)
    end = pd.Timestamp(starts[-1])
    usable = [
        pd.Timestamp(d)
        for d in starts[1:-1]
        if pd.Timestamp(d) + pd.Timedelta(days=horizon_days) <= end
    ]
    return [d.date().isoformat() for d in usable[-snapshots:]]


def write_feature_table(raw_dir: Path, out_path: Path, as_of_dates: list[str]) -> pd.DataFrame:
    """Build features + labels for every date in `as_of_dates` and write them to `out_path`.

    Returns:
        The table written (one row per customer and snapshot date).
    """
    table = build_training_set(load_events(raw_dir), as_of_dates)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out_path, index=False, compression="zstd")
    return table
