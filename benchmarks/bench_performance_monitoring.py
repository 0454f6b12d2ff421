"""Performance monitoring: the CBPE estimate against realized performance, and who sees
`concept_shift`.

* Windows: `benchmarks/performance_windows.py` (10k customers × 7 months per world, shift in
  month 5, a stand-in champion fitted on a separate world), 20 per scenario on REPORTED seeds
  1000–1019; thresholds from `params.yaml` `drift:`, chosen by `tune_performance.py` on seeds
  0–19 only.
* Estimate: `estimated_auc_mae` / `estimated_brier_mae` (|estimate − realized|) and
  `estimate_band_coverage` (realized AUC inside the 95% band) on the month *after* the shift
  (covariate shifts visible in the features), over baseline and the four covariate scenarios,
  where the estimate's assumption (P(y | score) unchanged) holds.
* `concept_shift`: the realized-performance rule (`realized_power_*`, false alarms on
  baseline), the same rule applied to the estimate instead of the realized metrics
  (`estimate_power_concept_shift`) and the data-drift decision on its feature windows
  (`data_drift_power_concept_shift`, `benchmarks/drift_windows.py`): the last two are expected
  low, since nothing the model sees moves.

Run: `python -m benchmarks.bench_performance_monitoring` →
benchmarks/results/performance_monitoring.json.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import write_result
from benchmarks.drift_windows import REPORTED_SEEDS, evaluate
from benchmarks.performance_windows import (
    CUSTOMERS,
    MONTHS,
    SHIFT_MONTH,
    collect,
    fit_champion,
    frame,
)
from paycycle.config import COVARIATE_SCENARIOS, SCENARIOS

SEEDS = range(REPORTED_SEEDS.start, REPORTED_SEEDS.start + 20)


def main() -> None:
    from benchmarks import drift_windows
    from monitoring.decision import Thresholds, performance_drop
    from paycycle import config

    thresholds = Thresholds.from_params(config.load().params.drift)
    t0 = time.perf_counter()
    w = frame(collect(SEEDS, SCENARIOS, fit_champion(), thresholds))
    fired = [
        performance_drop({"roc_auc": a, "brier": b}, {"roc_auc": c, "brier": d}, thresholds)[0]
        for a, b, c, d in w[["ref_auc", "ref_brier", "auc", "brier"]].itertuples(index=False)
    ]
    est_fired = [
        performance_drop({"roc_auc": a, "brier": b}, {"roc_auc": c, "brier": d}, thresholds)[0]
        for a, b, c, d in w[["ref_auc", "ref_brier", "est_roc_auc", "est_brier"]].itertuples(
            index=False
        )
    ]
    w = w.assign(fired=fired, est_fired=est_fired)
    w["auc_err"] = (w["after_est_roc_auc"] - w["after_auc"]).abs()
    w["brier_err"] = (w["after_est_brier"] - w["after_brier"]).abs()
    w["covered"] = (w["after_est_roc_auc_low"] <= w["after_auc"]) & (
        w["after_auc"] <= w["after_est_roc_auc_high"]
    )
    held = w[w["scenario"].isin(("baseline", *COVARIATE_SCENARIOS))]
    by = w.groupby("scenario")
    metrics = {
        "estimated_auc_mae": float(held["auc_err"].mean()),
        "estimated_brier_mae": float(held["brier_err"].mean()),
        "estimate_band_coverage": float(held["covered"].mean()),
        "realized_power_concept_shift": float(by["fired"].mean()["concept_shift"]),
        "realized_false_alarm_rate": float(by["fired"].mean()["baseline"]),
        "estimate_power_concept_shift": float(by["est_fired"].mean()["concept_shift"]),
        "estimate_false_alarm_rate": float(by["est_fired"].mean()["baseline"]),
    }
    for s in SCENARIOS:
        metrics[f"realized_power_{s}"] = float(by["fired"].mean()[s])
        metrics[f"estimated_auc_mae_{s}"] = float(by["auc_err"].mean()[s])
        metrics[f"estimate_band_coverage_{s}"] = float(by["covered"].mean()[s])
        metrics[f"realized_auc_mean_{s}"] = float(by["after_auc"].mean()[s])
        metrics[f"estimated_auc_mean_{s}"] = float(by["after_est_roc_auc"].mean()[s])
        metrics[f"realized_auc_shift_month_mean_{s}"] = float(by["auc"].mean()[s])
    metrics["collect_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    drift = evaluate(drift_windows.collect(SEEDS, ("concept_shift",)), thresholds)
    metrics["data_drift_power_concept_shift"] = drift["power_concept_shift"]
    metrics["data_drift_seconds"] = time.perf_counter() - t0
    metrics["windows_per_scenario"] = len(SEEDS)
    goals = {
        "estimated_auc_mae": "<= 0.02",
        "estimate_band_coverage": ">= 0.9",
        "realized_power_concept_shift": ">= 0.95",
        "realized_false_alarm_rate": "<= 0.05",
    }
    params = {
        "customers": CUSTOMERS,
        "months": MONTHS,
        "shift_month": SHIFT_MONTH,
        "reported_seeds": [SEEDS.start, SEEDS.stop - 1],
        "tuning_seeds": [0, 19],
        "champion": "logistic-regression baseline fitted on a separate baseline world",
        "rule_window": "predictions at the shift month's first day, outcomes within 30 days, "
        "against the same model's realized metrics on the month before",
        "estimate_window": "the month after the shift, calibrated on the shift month",
        "thresholds": {
            k: getattr(thresholds, k) for k in ("performance_auc_drop", "performance_brier_rise")
        },
        "table": {
            s: {
                "realized_auc_after": round(metrics[f"realized_auc_mean_{s}"], 4),
                "estimated_auc_after": round(metrics[f"estimated_auc_mean_{s}"], 4),
                "realized_auc_shift_month": round(metrics[f"realized_auc_shift_month_mean_{s}"], 4),
                "auc_mae": round(metrics[f"estimated_auc_mae_{s}"], 4),
                "band_coverage": metrics[f"estimate_band_coverage_{s}"],
                "realized_rule_fires": metrics[f"realized_power_{s}"],
            }
            for s in SCENARIOS
        },
    }
    path = write_result("performance_monitoring", params, metrics, goals)
    print(path.read_text())
    print("worst AUC errors:", np.round(np.sort(held["auc_err"].to_numpy())[-5:], 4))


if __name__ == "__main__":
    main()
