"""Churn stages composed: load the feature table, train + evaluate + log + register, promote.

The CLI (`paycycle train/evaluate/promote`), the Prefect flow (`flows/train.py`), the notebook
and the benchmarks call these; each is a plain function over a `Settings` object.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inference import registry as models
from inference.churn import FeatureSpec, load_scorer
from inference.registry import CHAMPION, CHURN_MODEL
from paycycle.config import ChurnParams, Settings
from paycycle.errors import DataError
from training import registry, tracking
from training.churn.model import (
    LABEL,
    TrainedModel,
    export_churn,
    train_churn,
)

CHECK_SAMPLE_ROWS = 300


@dataclass
class TrainingResult:
    """What one training run produced."""

    run_id: str
    metrics: dict[str, float]
    version: str | None = None
    model_uri: str | None = None
    trained: TrainedModel | None = field(default=None, repr=False)


def load_feature_table(settings: Settings, path: Path | None = None) -> pd.DataFrame:
    """The feature table written by `paycycle features`."""
    path = path or settings.path(settings.params.features.path)
    if not Path(path).exists():
        raise DataError(f"{path}: feature table not found; run `paycycle features` first")
    return pd.read_parquet(path)


def with_oracle(settings: Settings, frame: pd.DataFrame) -> pd.DataFrame:
    """Add `oracle_p` from the simulator truth when it exists (real data has none)."""
    if "oracle_p" in frame.columns or not (settings.truth_dir / "hazard").exists():
        return frame
    from features.build import attach_oracle

    return attach_oracle(frame, settings.truth_dir)


def split(settings: Settings, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time-based train/holdout split (last snapshot = holdout), oracle attached to the holdout."""
    from training.churn.model import split_holdout

    train, holdout = split_holdout(frame)
    return train, with_oracle(settings, holdout)


def score_holdout(scorer: Callable[[Any], np.ndarray], holdout: pd.DataFrame) -> dict[str, float]:
    """Evaluate a scorer on a holdout frame (oracle figures when `oracle_p` is present)."""
    from training.churn.evaluate import evaluate_churn

    p = scorer(holdout)
    oracle = holdout["oracle_p"].to_numpy() if "oracle_p" in holdout.columns else None
    return evaluate_churn(holdout[LABEL].to_numpy(), p, oracle)


def train_and_log(
    settings: Settings,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    params: ChurnParams | None = None,
    seed: int | None = None,
    spec: FeatureSpec | None = None,
    data_hash: str | None = None,
    data_path: Path | None = None,
    register: bool = True,
    run_name: str = "train-churn",
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    experiment: str = tracking.CHURN_EXPERIMENT,
) -> TrainingResult:
    """Train on `train`, evaluate the exported scorer on `holdout`, log everything, register.

    Logs params, the training data as a dataset input (`mlflow.log_input`, digest = the DVC md5
    of `data_path`), per-epoch metrics, data hash, git commit, feature list, calibration/ROC/lift
    plots, the SavedModel (signature + input example) and then its holdout metrics tied to that
    LoggedModel (with oracle ratio when truth exists), and a logistic-regression baseline fitted
    on the same split beside it (`baseline_auc`, `auc_minus_baseline`, tag `baseline`);
    registers the model as `paycycle-churn` with alias `challenger` when `register`.
    """
    from training.churn import baseline as lr
    from training.churn.evaluate import save_plots

    params = params or settings.params.churn
    seed = params.seed if seed is None else seed
    digest = tracking.resolve_data_hash(settings, data_hash, data_path)
    with tracking.start_run(
        settings, run_name, experiment=experiment, parent_run_id=parent_run_id, tags=tags
    ) as run:
        tracking.log_params({**params.model_dump(), "seed": seed})
        tracking.set_tags({"data_hash": digest or "unknown"})
        tracking.log_training_data(settings, train, data_path)
        trained = train_churn(
            train, params, seed=seed, spec=spec, callbacks=[tracking.epoch_logger()]
        )
        tmp = Path(tempfile.mkdtemp(prefix="churn-export-"))
        try:
            export_dir = export_churn(trained, tmp / "scorer")
            scorer = load_scorer(export_dir)
            metrics = score_holdout(scorer, holdout)
            base_spec = lr.baseline_spec(train, trained.spec)
            base_model = lr.fit_baseline(train, base_spec, seed)
            base_metrics = score_holdout(lr.baseline_scorer(base_model, base_spec), holdout)
            metrics |= lr.compare_to_baseline(metrics, base_metrics)
            metrics |= {"best_epoch": trained.best_epoch, "pos_weight": trained.pos_weight}
            metrics |= {f"rows_{k}": v for k, v in trained.rows.items()}
            verdict = lr.baseline_verdict(metrics, base_metrics)
            tracking.set_tags({"baseline": verdict, "mlflow.note.content": f"Keras MLP {verdict}."})
            tracking.log_dict(
                {
                    "numeric": trained.spec.numeric,
                    "categorical": trained.spec.categorical,
                    "vocabulary": trained.spec.vocabulary,
                    "log_features": trained.spec.log_features,
                },
                "features.json",
            )
            oracle = holdout["oracle_p"].to_numpy() if "oracle_p" in holdout.columns else None
            plots = save_plots(holdout[LABEL].to_numpy(), scorer(holdout), tmp / "plots", oracle)
            tracking.log_files(plots, "plots")
            sample = holdout[list(trained.spec.columns)].head(5).reset_index(drop=True)
            # the model first, then its metrics (tied to its LoggedModel); the baseline beside it
            model_uri = tracking.log_scorer_model(
                export_dir, sample, scorer(sample), CHURN_MODEL, metrics=metrics
            )
            tracking.log_sklearn_model(
                base_model,
                lr.BASELINE_ARTIFACT,
                lr.baseline_frame(holdout.head(5), base_spec),
                metrics={f"baseline_{k}": v for k, v in base_metrics.items()},
            )
            version = None
            if register:
                version = registry.register_candidate(
                    settings,
                    model_uri,
                    CHURN_MODEL,
                    {
                        "run_id": run.info.run_id,
                        "data_hash": digest or "unknown",
                        "auc": round(metrics["auc"], 5),
                    },
                )
                tracking.set_tags({"registered_version": version})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return TrainingResult(run.info.run_id, metrics, version, model_uri, trained)


def train_from_table(
    settings: Settings,
    params: ChurnParams | None = None,
    data_hash: str | None = None,
    register: bool = True,
    parent_run_id: str | None = None,
) -> TrainingResult:
    """`paycycle train churn`: the feature table → a registered challenger."""
    path = settings.path(settings.params.features.path)
    train, holdout = split(settings, load_feature_table(settings, path))
    return train_and_log(
        settings,
        train,
        holdout,
        params,
        data_hash=data_hash,
        data_path=path,
        register=register,
        parent_run_id=parent_run_id,
    )


BYO_EXPERIMENT = "paycycle-churn-byo"
BYO_HOLDOUT = 0.2


def train_byo(
    settings: Settings,
    csv_path: Path,
    target: str,
    id_column: str | None = None,
    params: ChurnParams | None = None,
):
    """`paycycle train churn --csv`: a user's table → trained, evaluated, logged (not registered).

    Returns:
        (TrainingResult, CsvReport).
    """
    from training.churn.byo import read_churn_csv, split_random

    params = params or settings.params.churn
    frame, spec, report = read_churn_csv(csv_path, target, id_column)
    train, holdout = split_random(frame, BYO_HOLDOUT, params.seed)
    if holdout[LABEL].nunique() < 2 or train[LABEL].nunique() < 2:
        raise DataError(f"{target}: too few churned rows to hold some out for evaluation")
    result = train_and_log(
        settings,
        train,
        holdout,
        params,
        spec=spec,
        data_path=Path(csv_path),
        register=False,
        run_name=f"byo-{Path(csv_path).stem}",
        experiment=BYO_EXPERIMENT,
        tags={"source": "byo-csv", "csv": str(csv_path), "target": target},
    )
    tracking.log_report(result.run_id, settings, report.lines())
    return result, report


def churn_policy(settings: Settings) -> registry.Policy:
    """The promotion rule from `params.yaml` `promotion:`."""
    p = settings.params.promotion
    return registry.Policy(
        metric=p.metric,
        margin=p.margin,
        higher_is_better=p.metric not in ("brier", "ece"),
        floors={"auc": (">=", p.min_auc), "brier": ("<=", p.max_brier), "ece": ("<=", p.max_ece)},
        require_beat_baseline=p.require_beat_baseline,
    )


def promote_churn(settings: Settings, frame: pd.DataFrame | None = None) -> registry.Decision:
    """`paycycle promote churn`: challenger vs champion (and the logistic-regression baseline,
    fitted on the same split) on the feature table's holdout."""
    from training.churn import baseline as lr
    from training.churn.behaviour import churn_checks

    frame = load_feature_table(settings) if frame is None else frame
    train, holdout = split(settings, frame)
    sample = holdout.sample(min(CHECK_SAMPLE_ROWS, len(holdout)), random_state=0)
    base_model = lr.fit_baseline(train, seed=settings.params.churn.seed)
    return registry.promote(
        CHURN_MODEL,
        settings,
        evaluate=lambda scorer: score_holdout(scorer, holdout),
        policy=churn_policy(settings),
        checks=lambda scorer: churn_checks(scorer, sample),
        baseline=lr.baseline_scorer(base_model),
    )


def evaluate_alias(settings: Settings, alias: str = CHAMPION) -> tuple[str, dict]:
    """`paycycle evaluate`: score `paycycle-churn@alias` on the current holdout."""
    scorer, version = models.load_scorer(CHURN_MODEL, alias, settings)
    _, holdout = split(settings, load_feature_table(settings))
    return version, score_holdout(scorer, holdout)


def bootstrap_champion(workdir: Path, customers: int = 2_000, seed: int = 7) -> str:
    """Simulate, build features, train, register and promote a churn champion under `workdir`.

    Returns:
        The MLflow tracking URI (a SQLite file in `workdir`) holding `paycycle-churn@champion`.
    """
    from features.table import snapshot_dates, write_feature_table
    from paycycle import config
    from paycycle.sim.simulator import SimSpec, simulate

    workdir = Path(workdir)
    uri = f"sqlite:///{workdir / 'mlruns.db'}"
    settings = config.load(root=workdir, mlflow_tracking_uri=uri)
    d, fp = settings.params.data, settings.params.features
    simulate(
        SimSpec(customers=customers, months=d.months, seed=seed),
        settings.raw_dir,
        settings.truth_dir,
    )
    dates = snapshot_dates(d.start_date, d.months, fp.snapshots, fp.horizon_days)
    write_feature_table(settings.raw_dir, settings.path(fp.path), dates)
    train_from_table(settings)
    decision = promote_churn(settings)
    if not decision.promoted:
        raise DataError(f"bootstrap champion refused: {decision.reason}")
    return uri
