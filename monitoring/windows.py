"""Feature windows for drift checks: a reference window and a current window.

A *window* is the point-in-time feature frame (`features.build.build_features`) at one `as_of`.
The *reference* is what the model learned from: the latest training snapshot, i.e. the window
at the first day of the shift month (it describes the month before the shift). The *current*
window is one month later, at ``month_starts[shift + 1]``: its features describe the shifted
month as "last month". That is the first `as_of` at which every scenario is visible:

* ``price_shock``, ``usage_drop``, ``payment_outage`` change bills, usage and payments *inside*
  the shift month, and features only read complete months / events strictly before `as_of`;
* ``segment_mix``'s new signups join on their billing day inside the shift month, so they are
  at risk (signed up before `as_of`) only from ``month_starts[shift + 1]`` on.

At ``as_of = month_starts[shift]`` every scenario is invisible in features (measured: identical
to baseline except ``segment_mix``'s missing movers), so monitoring the shift month itself is
not possible; drift is seen one monthly cycle after it starts.

Reference and current come from the same simulated world (same customers one month apart), as
in a deployment that compares this month with the data the champion was trained on. So the
reference is not an independent sample: tenure grows by a month and add-ons accumulate between
the two windows, which the decision rule must tolerate (see `monitoring.decision`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from paycycle.calendar import month_starts
from paycycle.errors import DataError
from paycycle.sim.simulator import SimSpec, simulate_chunk


@dataclass(frozen=True)
class Window:
    """A feature frame at one `as_of`, with the 30-day churn label when it is known."""

    frame: pd.DataFrame
    as_of: pd.Timestamp
    labels: pd.Series | None = None


def simulate_events(spec: SimSpec) -> dict[str, pd.DataFrame]:
    """Simulate `spec` in memory and return the raw tables as `read_table` would load them.

    Only for small windows (tests, benchmarks, `paycycle monitor`): one chunk, nothing on disk.
    Dates become `datetime64[ms]` like the Parquet contract.
    """
    tables = simulate_chunk(spec, 0, 1, spec.customers)
    events = {}
    for name, df in tables.items():
        if name.startswith("truth/"):
            continue
        df = df.copy()
        for col in df.columns:
            if str(df[col].dtype).startswith("datetime64"):
                df[col] = df[col].astype("datetime64[ms]")
        events[name] = df
    return events


def window_dates(spec: SimSpec) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(reference as_of, current as_of) for `spec`: the shift month's first day and the next one."""
    starts = month_starts(spec.start_date, spec.months)
    return pd.Timestamp(starts[spec.shift]), pd.Timestamp(starts[spec.shift + 1])


def scenario_windows(spec: SimSpec) -> tuple[Window, Window]:
    """Simulate `spec` and return its (reference, current) windows (see the module docstring).

    The reference carries labels (churn within 30 days of its `as_of`, known by the current
    `as_of`), which is what a deployment has for its training snapshot.
    """
    from features.build import build_features, build_labels

    if spec.shift < 1:
        raise DataError(
            f"shift_month: must be >= 1 so a pre-shift reference exists, got {spec.shift}"
        )
    events = simulate_events(spec)
    ref_date, cur_date = window_dates(spec)
    reference = build_features(events, ref_date)
    labels = build_labels(events, ref_date).reindex(reference["customer_id"]).to_numpy()
    return (
        Window(reference, ref_date, pd.Series(labels, index=reference.index, name="churned")),
        Window(build_features(events, cur_date), cur_date),
    )


def resample_rows(frame: pd.DataFrame, rows: int, seed: int = 0) -> pd.DataFrame:
    """Bootstrap `frame` to `rows` rows (timing at volume without simulating 1M customers)."""
    rng = np.random.default_rng(seed)
    return frame.iloc[rng.integers(0, len(frame), rows)].reset_index(drop=True)
