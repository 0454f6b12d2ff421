"""Labelled prediction windows for `bench_performance_monitoring` and `tune_performance`.

Each window is one simulated world of `drift_windows.spec_for(scenario, seed)` with `CUSTOMERS`
(10k, twice drift's 5k: one window's realized AUC has a sampling error of ~0.016 at 5k, near the
0.02 goal on the estimate) and `MONTHS` = 7, the scenario shifting month 5, so three prediction
windows exist, each labelled with its month's outcomes:

* `prior` (first day of month 4, before the shift): calibration and the rule's reference;
* `shift` (month 5): the realized rule's window. Covariate scenarios change events *inside*
  month 5, so its predictions (made from month 4) do not see them; `concept_shift` changes who
  leaves during it;
* `after` (month 6): the covariate shifts are in the features now. The estimate's accuracy is
  measured here, calibrated on `shift` (the month that just closed when `after` is scored).
A stand-in champion scores it: the linear
baseline (`training.churn.baseline`, within ~0.001 AUC of the Keras model on this simulator)
fitted once on a separate baseline world (`CHAMPION_SEED`, months 2–4), so a window costs a
simulation instead of a training run. `monitoring.performance.summarise` judges each window.

Seeds: the same split as drift (`TUNING_SEEDS` choose thresholds, `REPORTED_SEEDS` measure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from benchmarks.drift_windows import spec_for

CUSTOMERS = 10_000
MONTHS = 7
SHIFT_MONTH = 5
CHAMPION_SEED = 9_999
CHAMPION_CUSTOMERS = 20_000
VERSION = "lr"


@dataclass
class PerformanceWindow:
    scenario: str
    seed: int
    reference: dict[str, Any] | None  # realized metrics of the prior month
    realized: dict[str, Any] | None  # realized metrics of the shift month
    estimated: dict[str, float]  # CBPE estimate of the shift month (calibrated on the prior)
    after_realized: dict[str, Any] | None  # realized metrics of the month after the shift
    after_estimated: dict[str, float]  # its CBPE estimate (calibrated on the shift month)


def fit_champion():
    """The stand-in champion: a scorer fitted on a baseline world no window uses."""
    from features.build import build_training_set
    from monitoring.windows import simulate_events
    from paycycle.calendar import month_starts
    from training.churn.baseline import baseline_scorer, fit_baseline

    spec = spec_for("baseline", CHAMPION_SEED, customers=CHAMPION_CUSTOMERS)
    events = simulate_events(spec)
    train = build_training_set(events, month_starts(spec.start_date, spec.months)[2:5])
    return baseline_scorer(fit_baseline(train.dropna(subset=["churned"])))


def performance_window(scenario: str, seed: int, scorer, thresholds) -> PerformanceWindow:
    """Simulate one world and judge its shift month and the month after."""
    from dataclasses import replace

    from monitoring.outcomes import simulated_window
    from monitoring.performance import realized_metrics, summarise
    from monitoring.windows import simulate_events
    from paycycle.calendar import month_starts

    spec = replace(spec_for(scenario, seed, CUSTOMERS, MONTHS), shift_month=SHIFT_MONTH)
    events = simulate_events(spec)
    dates = month_starts(spec.start_date, spec.months)[SHIFT_MONTH - 1 : SHIFT_MONTH + 2]
    prior, shift, after = (simulated_window(events, d, scorer, VERSION) for d in dates)
    judged = summarise(shift, dates[1], thresholds, prior, seed=seed)["model_versions"][VERSION]
    later = summarise(after, dates[2], thresholds, shift, seed=seed)["model_versions"][VERSION]
    labels, scores = prior["churned"].to_numpy(float), prior["churn_probability"].to_numpy(float)
    return PerformanceWindow(
        scenario,
        seed,
        realized_metrics(labels, scores),
        judged["realized"],
        judged["estimated"],
        later["realized"],
        later["estimated"],
    )


def collect(
    seeds: range, scenarios: tuple[str, ...], scorer, thresholds
) -> list[PerformanceWindow]:
    """Every (scenario, seed) window."""
    return [performance_window(s, seed, scorer, thresholds) for s in scenarios for seed in seeds]


def frame(windows: list[PerformanceWindow]) -> pd.DataFrame:
    """One row per window: AUC and Brier, realized (prior, shift and after month) and estimated
    (shift and after month)."""
    return pd.DataFrame(
        {
            "scenario": [w.scenario for w in windows],
            "seed": [w.seed for w in windows],
            "ref_auc": [w.reference["roc_auc"] for w in windows],
            "ref_brier": [w.reference["brier"] for w in windows],
            "auc": [w.realized["roc_auc"] for w in windows],
            "brier": [w.realized["brier"] for w in windows],
            "after_auc": [w.after_realized["roc_auc"] for w in windows],
            "after_brier": [w.after_realized["brier"] for w in windows],
            **{
                f"est_{k}": [w.estimated[k] for w in windows]
                for k in ("roc_auc", "roc_auc_low", "roc_auc_high", "brier")
            },
            **{
                f"after_est_{k}": [w.after_estimated[k] for w in windows]
                for k in ("roc_auc", "roc_auc_low", "roc_auc_high", "brier")
            },
        }
    )
