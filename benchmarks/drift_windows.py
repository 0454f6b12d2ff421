"""Labelled drift windows for `bench_drift` and `tune_drift`: one simulated world per window.

Each window is a 5k-customer × 6-month simulation (seed `s`, calendar start month `s % 12 + 1`
so every month-length transition occurs) with the scenario shifting the last month. Reference
= the window at the first day of the shift month (the champion's training snapshot, with its
labels), current = one month later (see `monitoring.windows`). Baseline windows are the same
with no shift, so a false alarm is a monitor crying wolf over one ordinary month.

Seeds are split: `TUNING_SEEDS` choose the thresholds (`tune_drift.py`), `REPORTED_SEEDS`
measure them (`bench_drift.py`) and never feed the choice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from paycycle.config import COVARIATE_SCENARIOS

TUNING_SEEDS = range(0, 30)
REPORTED_SEEDS = range(1000, 1030)
# concept_shift moves no input by design: data drift is not asked to see it (measured instead by
# `bench_performance_monitoring`, as `data_drift_power_concept_shift`)
SHIFTS = COVARIATE_SCENARIOS
CUSTOMERS = 5_000
MONTHS = 6


@dataclass
class LabelledWindow:
    scenario: str
    seed: int
    table: pd.DataFrame  # monitoring.stats.drift_table output
    importance: dict[str, float]


def spec_for(scenario: str, seed: int, customers: int = CUSTOMERS, months: int = MONTHS):
    """The simulation behind one labelled window."""
    from paycycle.sim.simulator import SimSpec

    start = dt.date(2025, seed % 12 + 1, 1)
    return SimSpec(
        customers=customers, months=months, seed=seed, scenario=scenario, start_date=start
    )


def labelled_window(scenario: str, seed: int, bins: int = 10) -> LabelledWindow:
    """Simulate one window and compute its threshold-free statistics and feature importance."""
    from features import schema
    from monitoring.decision import univariate_importance
    from monitoring.stats import drift_table
    from monitoring.windows import scenario_windows

    ref, cur = scenario_windows(spec_for(scenario, seed))
    table = drift_table(ref.frame, cur.frame, schema.NUMERIC, schema.CATEGORICAL, bins)
    return LabelledWindow(scenario, seed, table, univariate_importance(ref.frame, ref.labels))


def collect(
    seeds: range, scenarios: tuple[str, ...] = ("baseline", *SHIFTS)
) -> list[LabelledWindow]:
    """Every (scenario, seed) window."""
    return [labelled_window(s, seed) for s in scenarios for seed in seeds]


def evaluate(windows: list[LabelledWindow], thresholds) -> dict[str, float]:
    """`power_<scenario>` (each shifted scenario in `windows`), `min_power` and
    `false_alarm_rate` of `thresholds` on `windows`."""
    import numpy as np

    from monitoring.decision import decide, weights

    flagged: dict[str, list[bool]] = {}
    for w in windows:
        t = w.table.copy()
        t["threshold"] = [
            thresholds.for_feature(c, m) for c, m in zip(t["column"], t["measure"], strict=True)
        ]
        t["drifted"] = (t["effect"] >= t["threshold"]) & (t["p_value"] < thresholds.alpha)
        t["weight"] = weights(list(t["column"]), w.importance, thresholds.importance_mix)
        flagged.setdefault(w.scenario, []).append(decide(t, thresholds).drift)
    out = {f"power_{s}": float(np.mean(v)) for s, v in flagged.items() if s != "baseline"}
    out["min_power"] = min(out.values()) if out else float("nan")
    out["false_alarm_rate"] = float(np.mean(flagged.get("baseline", [np.nan])))
    return out
