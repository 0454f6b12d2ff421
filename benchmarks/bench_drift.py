"""Drift decision: detection power per labelled scenario, false alarms, speed at 1M rows.

* Windows: `benchmarks/drift_windows.py` (5k customers × 6 months per world, reference = the
  month before the shift, current = the shifted month), N = 30 per scenario and 30 baseline,
  on REPORTED seeds 1000–1029; thresholds come from `params.yaml` `drift:`, chosen by
  `tune_drift.py` on seeds 0–29 only.
* Speed: a 1M-row reference and a 1M-row current window (bootstrap of a simulated baseline and
  usage_drop window), timed for the decision (NumPy statistics on every row), for the whole
  check with the Evidently report on a 50k stratified sample, and for Evidently's
  DataDriftPreset on the full 1M rows (the ~60 s this replaces; skip with `--no-full`).

Run: `python -m benchmarks.bench_drift [--no-full]` → benchmarks/results/drift.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import write_result
from benchmarks.drift_windows import CUSTOMERS, MONTHS, REPORTED_SEEDS, collect, evaluate

ROWS_1M = 1_000_000


def speed(thresholds, full: bool) -> dict[str, float]:
    from benchmarks.drift_windows import spec_for
    from features import schema
    from monitoring.decision import detect_drift
    from monitoring.drift import drift_report, run_evidently
    from monitoring.windows import resample_rows, scenario_windows

    ref, _ = scenario_windows(spec_for("baseline", 5))
    _, cur = scenario_windows(spec_for("usage_drop", 5))
    big_ref = resample_rows(ref.frame, ROWS_1M, seed=1)
    big_cur = resample_rows(cur.frame, ROWS_1M, seed=2)
    base_cur = resample_rows(ref.frame, ROWS_1M, seed=3)
    t0 = time.perf_counter()
    decision = detect_drift(big_ref, big_cur, thresholds)
    decision_s = time.perf_counter() - t0
    quiet = detect_drift(big_ref, base_cur, thresholds)
    out = {
        "seconds_1m_rows": decision_s,
        "drift_flagged_1m_usage_drop": float(decision.drift),
        "drift_flagged_1m_same_window": float(quiet.drift),
    }
    with tempfile.TemporaryDirectory() as tmp:
        run_evidently(big_ref.iloc[:1000], big_cur.iloc[:1000], False, False, Path(tmp) / "w.html")
        t0 = time.perf_counter()
        drift_report(big_ref, big_cur, out_dir=Path(tmp), name="speed", thresholds=thresholds)
        out["seconds_1m_rows_with_report"] = time.perf_counter() - t0
        if full:
            cols = schema.COLUMNS
            t0 = time.perf_counter()
            run_evidently(big_ref[cols], big_cur[cols], False, False, Path(tmp) / "full.html")
            out["seconds_1m_rows_evidently_full"] = time.perf_counter() - t0
            out["speedup_vs_evidently_full"] = (
                out["seconds_1m_rows_evidently_full"] / out["seconds_1m_rows_with_report"]
            )
    return out


def main() -> None:
    from monitoring.decision import Thresholds
    from paycycle import config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-full", action="store_true", help="skip Evidently on 1M rows")
    args = parser.parse_args()
    thresholds = Thresholds.from_params(config.load().params.drift)
    t0 = time.perf_counter()
    windows = collect(REPORTED_SEEDS)
    metrics = evaluate(windows, thresholds)
    metrics["windows_per_scenario"] = len(REPORTED_SEEDS)
    metrics["collect_seconds"] = time.perf_counter() - t0
    metrics.update(speed(thresholds, full=not args.no_full))
    goals = {
        **{k: ">= 0.95" for k in metrics if k.startswith("power_")},
        "min_power": ">= 0.95",
        "false_alarm_rate": "<= 0.05",
        "seconds_1m_rows": "<= 10",
    }
    params = {
        "customers": CUSTOMERS,
        "months": MONTHS,
        "reported_seeds": [REPORTED_SEEDS.start, REPORTED_SEEDS.stop - 1],
        "tuning_seeds": [0, 29],
        "reference": "same world, first day of the shift month (training snapshot)",
        "current": "first day after the shift month",
        "thresholds": {k: v for k, v in thresholds.__dict__.items() if k != "feature_thresholds"},
    }
    path = write_result("drift", params, metrics, goals)
    print(path.read_text())


if __name__ == "__main__":
    main()
