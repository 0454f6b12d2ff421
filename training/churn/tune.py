"""Optuna search for the churn model: TPE, per-epoch pruning, many worker processes, one study.

Trials optimise the validation AUC of `train_churn` on the training snapshots (the holdout
stays untouched for the final model). A small Keras callback reports the best `val_auc` so far
after every epoch — the value the trial would return if it stopped there, so it is monotone, less
noisy than the raw per-epoch AUC and its last report equals the objective — and the pruner
(`tuning.pruner`: successive halving by default, median or Hyperband) stops poor trials early.
Each trial starts with `keras.backend.clear_session()`, which also runs the one full garbage
collection per trial. The study lives in an RDB storage — SQLite in the project by default,
PostgreSQL via `PAYCYCLE_OPTUNA_STORAGE` — with heartbeats: a worker that dies mid-trial stops
beating, the next trial start in any worker marks its trial FAILED and
`RetryFailedTrialCallback` enqueues it again. `MaxTrialsCallback` makes all workers together
stop at the trial budget (completed + pruned). Each trial is an MLflow child run of the tuning
run. `tune(..., workers=N)` runs N worker processes (`paycycle tune-worker`) and replaces any
that die before the budget is met.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

from paycycle.config import ChurnParams, Settings, TuningParams
from paycycle.errors import DataError
from training import tracking

HIDDEN_CHOICES = {"32": (32,), "64-32": (64, 32), "128-64": (128, 64)}


@dataclass
class TuneResult:
    study: str
    best_value: float
    best_params: dict[str, Any]
    complete: int
    pruned: int
    failed: int
    seconds: float
    parent_run_id: str | None = None


def make_storage(url: str, tuning: TuningParams):
    """An RDB storage with heartbeats and retry of trials whose worker died."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    else:
        kwargs["engine_kwargs"] = {"pool_pre_ping": True}
    return RDBStorage(
        url,
        heartbeat_interval=tuning.heartbeat_interval,
        grace_period=tuning.grace_period,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=tuning.max_retry),
        **kwargs,
    )


def make_pruner(tuning: TuningParams, epochs: int | None = None):
    """The `tuning.pruner` over per-epoch steps; no trial is pruned before `warmup_epochs`.

    Args:
        tuning: pruner kind, warm-up and reduction factor.
        epochs: epochs per trial (Hyperband's maximum resource; default `tuning.epochs`).

    Returns:
        An Optuna pruner. (No `PatientPruner`: the reported best-so-far never falls, so it would
        never let a trial be pruned.)
    """
    import optuna

    min_resource = max(tuning.warmup_epochs, 1)
    if tuning.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=tuning.startup_trials, n_warmup_steps=tuning.warmup_epochs
        )
    if tuning.pruner == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=min_resource, reduction_factor=tuning.reduction_factor
        )
    return optuna.pruners.HyperbandPruner(
        min_resource=min_resource,
        max_resource=max(epochs or tuning.epochs, min_resource),
        reduction_factor=tuning.reduction_factor,
    )


def create_study(
    storage, name: str, tuning: TuningParams, pruning: bool = True, epochs: int | None = None
):
    """Create or load the study: TPE (seeded) + `make_pruner` (or none without `pruning`)."""
    import optuna

    sampler = optuna.samplers.TPESampler(seed=tuning.seed, n_startup_trials=tuning.startup_trials)
    pruner = make_pruner(tuning, epochs) if pruning else optuna.pruners.NopPruner()
    return optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction="maximize",
        load_if_exists=True,
    )


def suggest_params(trial, base: ChurnParams) -> ChurnParams:
    """The (deliberately small) search space around `base`."""
    return base.model_copy(
        update={
            "learning_rate": trial.suggest_float("learning_rate", 3e-4, 3e-3, log=True),
            "dropout": trial.suggest_float("dropout", 0.0, 0.4),
            "hidden_units": HIDDEN_CHOICES[
                trial.suggest_categorical("hidden", list(HIDDEN_CHOICES))
            ],
            "imbalance_power": trial.suggest_float("imbalance_power", 0.0, 1.0),
        }
    )


def params_from_best(base: ChurnParams, best: dict[str, Any]) -> ChurnParams:
    """Turn a study's `best_params` back into `ChurnParams`."""
    update = {k: v for k, v in best.items() if k in ChurnParams.model_fields}
    if "hidden" in best:
        update["hidden_units"] = HIDDEN_CHOICES[best["hidden"]]
    return base.model_copy(update=update)


def pruning_callback(trial, monitor: str = "val_auc"):
    """Report the best `monitor` so far after each epoch; raise `TrialPruned` when told to stop.

    The best so far (not the epoch's own value) is what the objective returns — the maximum over
    epochs, the weights `EarlyStopping(restore_best_weights=True)` keeps — so pruners rank trials
    on the quantity being optimised and one noisy epoch cannot sink a good trial.
    """
    import keras
    import optuna

    class Pruning(keras.callbacks.Callback):
        best = float("-inf")

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            value = (logs or {}).get(monitor)
            if value is None:
                return
            self.best = max(self.best, float(value))
            trial.report(self.best, step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch + 1} ({monitor}={self.best:.4f})")

    return Pruning()


def make_objective(
    settings: Settings,
    train,
    epochs: int,
    parent_run_id: str | None = None,
    track: bool = True,
):
    """Objective: best validation AUC of `train_churn` with the trial's params."""
    import optuna

    from training.churn.model import train_churn

    base = settings.params.churn

    def objective(trial: optuna.Trial) -> float:
        import keras

        keras.backend.clear_session()  # old graphs and layer names, then gc.collect()
        trial.set_user_attr("pid", os.getpid())
        params = suggest_params(trial, base)
        callbacks = [pruning_callback(trial)]

        def fit() -> float:
            m = train_churn(train, params, callbacks=callbacks, epochs=epochs)
            return float(max(m.history["val_auc"]))

        if not track:
            return fit()
        with tracking.start_run(
            settings,
            f"trial-{trial.number}",
            parent_run_id=parent_run_id,
            tags={"optuna_trial": str(trial.number), "optuna_study": trial.study.study_name},
        ):
            tracking.log_params({**trial.params, "epochs": epochs})
            callbacks.append(tracking.epoch_logger())
            try:
                value = fit()
            except optuna.TrialPruned:
                tracking.set_tags({"optuna_state": "PRUNED"})
                raise
            tracking.log_metrics({"best_val_auc": value})
            tracking.set_tags({"optuna_state": "COMPLETE"})
            return value

    return objective


def counts(study) -> dict[str, int]:
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {
        "complete": states.count(TrialState.COMPLETE),
        "pruned": states.count(TrialState.PRUNED),
        "failed": states.count(TrialState.FAIL),
        "running": states.count(TrialState.RUNNING),
    }


def run_worker(
    settings: Settings,
    study_name: str,
    storage_url: str,
    trials: int,
    parent_run_id: str | None = None,
    epochs: int | None = None,
    pruning: bool = True,
    train=None,
    track: bool = True,
) -> None:
    """Run trials on the shared study until it holds `trials` finished (complete/pruned) ones."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from training.churn.pipeline import load_feature_table, split

    tuning = settings.params.tuning
    if train is None:
        train, _ = split(settings, load_feature_table(settings))
    epochs = epochs or tuning.epochs
    study = create_study(make_storage(storage_url, tuning), study_name, tuning, pruning, epochs)
    if sum(counts(study)[k] for k in ("complete", "pruned")) >= trials:
        return
    objective = make_objective(settings, train, epochs, parent_run_id, track)
    study.optimize(
        objective,
        callbacks=[MaxTrialsCallback(trials, states=(TrialState.COMPLETE, TrialState.PRUNED))],
    )
    optuna.storages.fail_stale_trials(study)


def _worker_command(settings: Settings, study: str, url: str, trials: int, parent: str | None):
    cmd = [
        sys.executable,
        "-m",
        "paycycle",
        "tune-worker",
        "--study",
        study,
        "--trials",
        str(trials),
    ]
    if parent:
        cmd += ["--parent-run", parent]
    env = {
        **os.environ,
        "PAYCYCLE_ROOT": str(settings.root),
        "PAYCYCLE_PARAMS_PATH": str(settings.params_path),
        "PAYCYCLE_OPTUNA_STORAGE": url,
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
    }
    return cmd, env


def tune(
    settings: Settings,
    trials: int | None = None,
    workers: int = 1,
    study_name: str | None = None,
    storage_url: str | None = None,
    pruning: bool = True,
    max_restarts: int | None = None,
) -> TuneResult:
    """Run a study to `trials` finished trials with `workers` processes; return the best.

    Args:
        settings: project settings (feature table, tuning params, tracking URI).
        trials: trial budget (default `tuning.trials`).
        workers: 1 runs in this process; N > 1 starts N `paycycle tune-worker` processes.
        study_name: default `tuning.study`.
        storage_url: default `settings.optuna_url` (SQLite in the project).
        pruning: prune with `tuning.pruner` on per-epoch validation AUC.
        max_restarts: how many dead workers to replace (default `workers`).

    Returns:
        Best value/params and trial counts.
    """
    tuning = settings.params.tuning
    trials = trials or tuning.trials
    study_name = study_name or tuning.study
    url = storage_url or settings.optuna_url
    start = time.perf_counter()
    storage = make_storage(url, tuning)
    study = create_study(storage, study_name, tuning, pruning)
    with tracking.start_run(
        settings, f"tune-{study_name}", tags={"optuna_study": study_name}
    ) as run:
        parent = run.info.run_id
        tracking.log_params(
            {
                "trials": trials,
                "workers": workers,
                "pruning": pruning,
                "pruner": tuning.pruner if pruning else "none",
            }
        )
        if workers <= 1:
            run_worker(settings, study_name, url, trials, parent, pruning=pruning)
        else:
            if _supervise(settings, study, study_name, url, trials, parent, workers, max_restarts):
                _fail_orphans(study, tuning)
        import optuna

        optuna.storages.fail_stale_trials(study)
        c = counts(study)
        if c["complete"] == 0:
            raise DataError(f"study {study_name}: no trial completed ({c}); see the worker output")
        result = TuneResult(
            study_name,
            float(study.best_value),
            dict(study.best_params),
            c["complete"],
            c["pruned"],
            c["failed"],
            time.perf_counter() - start,
            parent,
        )
        tracking.log_params({f"best_{k}": v for k, v in result.best_params.items()})
        tracking.log_metrics(
            {
                "best_val_auc": result.best_value,
                "complete": c["complete"],
                "pruned": c["pruned"],
                "failed": c["failed"],
                "seconds": result.seconds,
            }
        )
    return result


def _supervise(settings, study, name, url, trials, parent, workers, max_restarts) -> int:
    """Keep `workers` processes on the study until the budget is met; replace dead ones.

    Returns how many workers exited with an error (their trials may still read RUNNING).
    """
    cmd, env = _worker_command(settings, name, url, trials, parent)
    procs = [subprocess.Popen(cmd, env=env) for _ in range(workers)]
    restarts = workers if max_restarts is None else max_restarts
    died = 0
    while procs:
        time.sleep(0.5)
        for p in list(procs):
            code = p.poll()
            if code is None:
                continue
            procs.remove(p)
            died += code != 0
            done = counts(study)
            if code != 0 and done["complete"] + done["pruned"] < trials and restarts > 0:
                restarts -= 1
                procs.append(subprocess.Popen(cmd, env=env))
    return died


def _fail_orphans(study, tuning: TuningParams) -> None:
    """Mark the trials of dead workers FAIL once their heartbeat is stale (≤ grace + interval).

    The surviving workers may meet the budget before a dead worker's trial goes stale; without
    this wait it would stay RUNNING in the study for ever.
    """
    import optuna

    deadline = time.monotonic() + tuning.grace_period + tuning.heartbeat_interval
    while counts(study)["running"] and time.monotonic() < deadline:
        time.sleep(0.5)
        optuna.storages.fail_stale_trials(study)
