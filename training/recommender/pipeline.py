"""Recommender stages composed: build the table, train + evaluate + log + register, promote.

Tracking, registration and promotion go through the same code as the churn model
(`training.tracking`, `training.registry`): the recommender registers as `paycycle-recommender`
(loaded by name through `inference.registry`), and `promote_recommender` runs the generic
champion/challenger rule with recall@k as the metric and the oracle ratio as a floor.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from inference.registry import RECOMMENDER_MODEL
from paycycle.config import RecommendParams, Settings
from paycycle.errors import DataError
from training import registry, tracking
from training.recommender import data as rd

RECOMMENDER_EXPERIMENT = RECOMMENDER_MODEL


@dataclass
class RecTrainingResult:
    """What one recommender training run produced."""

    run_id: str | None
    metrics: dict[str, float]
    version: str | None = None
    trained: Any = field(default=None, repr=False)


def build_table(settings: Settings, params: RecommendParams | None = None) -> pd.DataFrame:
    """The recommender's stacked snapshots from the project's raw tables."""
    from features.build import load_events

    params = params or settings.params.recommend
    d = settings.params.data
    dates = rd.rec_snapshot_dates(d.start_date, d.months, params.window_days)
    return rd.build_rec_table(load_events(settings.raw_dir), dates, params.window_days)


def holdout_evaluator(holdout: pd.DataFrame, truth_dir: Path | None, k: int, window_days: int):
    """`scorer -> metrics` on `holdout` (oracle figures when the truth exists)."""
    from training.recommender.evaluate import evaluate_recommender, oracle_item_scores

    oracle = None
    if truth_dir is not None and (Path(truth_dir) / "customers").exists():
        oracle = oracle_item_scores(holdout, truth_dir, window_days)

    def evaluate(scorer) -> dict[str, float]:
        return evaluate_recommender(scorer(holdout), holdout, oracle, k)

    return evaluate


def train_and_log(
    settings: Settings,
    table: pd.DataFrame,
    params: RecommendParams | None = None,
    truth_dir: Path | None = None,
    register: bool = True,
    log: bool = True,
    run_name: str = "train-recommender",
) -> RecTrainingResult:
    """Train on the earlier snapshots, evaluate the exported scorer on the last one, log, register.

    Args:
        settings: tracking URI and project paths.
        table: `rec_data.build_rec_table` output.
        params: defaults to `params.yaml` `recommend:`.
        truth_dir: simulator truth for the oracle ratio (default: the project's, if present).
        register: register as `paycycle-recommender@challenger`.
        log: log to MLflow at all (benchmarks and tests may not want a run).
    """
    from inference.recommender import load_recommender
    from training.recommender.model import export_recommender, train_recommender

    params = params or settings.params.recommend
    truth_dir = settings.truth_dir if truth_dir is None else truth_dir
    train, holdout = rd.split_rec(table, params.window_days)
    evaluate = holdout_evaluator(holdout, truth_dir, params.k, params.window_days)
    tmp = Path(tempfile.mkdtemp(prefix="rec-export-"))
    try:
        if not log:
            trained = train_recommender(train, params)
            scorer = load_recommender(export_recommender(trained, tmp / "scorer"))
            return RecTrainingResult(None, _with_fit(evaluate(scorer), trained), None, trained)
        with tracking.start_run(settings, run_name, experiment=RECOMMENDER_EXPERIMENT) as run:
            tracking.log_params(params.model_dump(mode="json"))
            trained = train_recommender(train, params, callbacks=[tracking.epoch_logger()])
            export_dir = export_recommender(trained, tmp / "scorer")
            scorer = load_recommender(export_dir)
            metrics = _with_fit(evaluate(scorer), trained)
            tracking.log_dict({"items": rd.ITEMS, "actions": rd.ACTIONS}, "items.json")
            sample = holdout.head(5).reset_index(drop=True)
            sample = sample[[c for c in trained.spec.features.columns if c in sample.columns]]
            # the model first, then its metrics (tied to its LoggedModel)
            model_uri = tracking.log_scorer_model(
                export_dir, sample, scorer(sample), RECOMMENDER_MODEL, metrics=metrics
            )
            version = None
            if register:
                version = registry.register_candidate(
                    settings,
                    model_uri,
                    RECOMMENDER_MODEL,
                    {"run_id": run.info.run_id, "recall": metrics.get(f"recall_at_{params.k}")},
                )
                tracking.set_tags({"registered_version": version})
        return RecTrainingResult(run.info.run_id, metrics, version, trained)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _with_fit(metrics: dict[str, float], trained) -> dict[str, float]:
    metrics = dict(metrics)
    metrics["best_epoch"] = trained.best_epoch
    metrics |= {f"rows_{k}": v for k, v in trained.rows.items()}
    return metrics


def recommender_policy(params: RecommendParams, with_oracle: bool = True) -> registry.Policy:
    """Promotion rule: beat the champion's recall@k by `margin`; oracle-ratio floor."""
    floors = {}
    if with_oracle:
        floors[f"recall_at_{params.k}_oracle_ratio"] = (">=", params.min_oracle_ratio)
    return registry.Policy(metric=f"recall_at_{params.k}", margin=params.margin, floors=floors)


def promote_recommender(
    settings: Settings, table: pd.DataFrame | None = None, truth_dir: Path | None = None
) -> registry.Decision:
    """Challenger vs champion on the same holdout, through the generic registry rule."""
    params = settings.params.recommend
    table = build_table(settings, params) if table is None else table
    truth_dir = settings.truth_dir if truth_dir is None else truth_dir
    _, holdout = rd.split_rec(table, params.window_days)
    with_oracle = (Path(truth_dir) / "customers").exists()
    if holdout.empty:
        raise DataError("holdout: empty; simulate more months")
    return registry.promote(
        RECOMMENDER_MODEL,
        settings,
        evaluate=holdout_evaluator(holdout, truth_dir, params.k, params.window_days),
        policy=recommender_policy(params, with_oracle),
    )
