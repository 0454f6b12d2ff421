"""Labelled prediction windows for `bench_performance_monitoring` and `tune_performance`.

Each window is one simulated world of `drift_windows.spec_for(scenario, seed)` (`CUSTOMERS` ×
6 months, the scenario shifting the last month; 10k customers, twice drift's 5k, because one
window's realized AUC has a sampling error of ~0.016 at 5k, near the 0.02 goal on the estimate).
A stand-in champion scores it: the linear
baseline (`training.churn.baseline`, within ~0.001 AUC of the Keras model on this simulator)
fitted once on a separate baseline world (`CHAMPION_SEED`, months 2–4), so a window costs a
simulation instead of a training run. Per world, `monitoring.outcomes.simulated_windows` gives
the prior month (labelled: calibration and the rule's reference) and the shift month, whose
outcomes arrive one month later; `monitoring.performance.summarise` judges it.

Seeds: the same split as drift (`TUNING_SEEDS` choose thresholds, `REPORTED_SEEDS` measure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from benchmarks.drift_windows import spec_for

CUSTOMERS = 10_000
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
    """Simulate one world and judge its shift month."""
    from monitoring.outcomes import simulated_windows
    from monitoring.performance import realized_metrics, summarise

    spec = spec_for(scenario, seed, customers=CUSTOMERS)
    prior, current, as_of = simulated_windows(spec, scorer, VERSION)
    summary = summarise(current, as_of, thresholds, prior, seed=seed)
    v = summary["model_versions"][VERSION]
    reference = realized_metrics(
        prior["churned"].to_numpy(float), prior["churn_probability"].to_numpy(float)
    )
    return PerformanceWindow(scenario, seed, reference, v["realized"], v["estimated"])


def collect(
    seeds: range, scenarios: tuple[str, ...], scorer, thresholds
) -> list[PerformanceWindow]:
    """Every (scenario, seed) window."""
    return [performance_window(s, seed, scorer, thresholds) for s in scenarios for seed in seeds]


def frame(windows: list[PerformanceWindow]) -> pd.DataFrame:
    """One row per window: AUC and Brier, realized (prior and shift month) and estimated."""
    return pd.DataFrame(
        {
            "scenario": [w.scenario for w in windows],
            "seed": [w.seed for w in windows],
            "ref_auc": [w.reference["roc_auc"] for w in windows],
            "ref_brier": [w.reference["brier"] for w in windows],
            "auc": [w.realized["roc_auc"] for w in windows],
            "brier": [w.realized["brier"] for w in windows],
            **{
                f"est_{k}": [w.estimated[k] for w in windows]
                for k in ("roc_auc", "roc_auc_low", "roc_auc_high", "brier")
            },
        }
    )
