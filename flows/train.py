"""Weekly retraining as a Prefect 3 flow: tune → train best → evaluate → register → promote.

Each task wraps one function of `training/` (`tune.tune`, `pipeline.train_and_log`,
`pipeline.promote_churn`, and on request the recommender's and offer policy's train + promote);
the flow only wires them. `data_hash` is the data pipeline's DVC md5
(`flows.pipeline` returns it) and is logged on every run, so a model names the data it saw.
Promotion is by rule (floors, margin over the champion, behavioural checks), never by hand.

Run: `python -m flows.train [--trials N]` or as the `weekly-retraining` deployment.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.artifacts import publish
from monitoring.artifacts import promotion_artifact
from paycycle import config
from paycycle.config import Settings


@task(retries=1, retry_delay_seconds=10, cache_policy=NO_CACHE, log_prints=True)
def tune_params(settings: Settings, trials: int | None, workers: int) -> dict[str, Any]:
    """Optuna study on the training snapshots; returns the best params."""
    from training.churn.tune import tune

    result = tune(settings, trials, workers)
    print(f"best val AUC {result.best_value:.4f} after {result.complete + result.pruned} trials")
    return result.best_params


@task(cache_policy=NO_CACHE, log_prints=True)
def train_best(settings: Settings, best: dict[str, Any], data_hash: str | None) -> dict[str, Any]:
    """Train the best params on all training snapshots, evaluate on the holdout, register."""
    from training.churn.pipeline import train_from_table
    from training.churn.tune import params_from_best

    params = params_from_best(settings.params.churn, best)
    result = train_from_table(settings, params, data_hash=data_hash)
    m = result.metrics
    print(
        f"version {result.version}: AUC {m['auc']:.4f}, Brier {m['brier']:.4f}"
        + (f", oracle ratio {m['oracle_auc_ratio']:.3f}" if "oracle_auc_ratio" in m else "")
    )
    return {"run_id": result.run_id, "version": result.version, "metrics": m}


@task(cache_policy=NO_CACHE, log_prints=True)
def promote(settings: Settings) -> dict[str, Any]:
    """Challenger vs champion by the params.yaml rule; the decision is logged either way."""
    from training.churn.pipeline import promote_churn

    d = promote_churn(settings)
    print(f"{d.action} version {d.version}: {d.reason}")
    publish(promotion_artifact(dataclasses.asdict(d), model="churn"))
    return {"action": d.action, "version": d.version, "reason": d.reason}


@task(cache_policy=NO_CACHE, log_prints=True)
def train_recommender(settings: Settings) -> dict[str, Any]:
    """Train the recommender on the raw snapshots, register it, promote it by rule."""
    from training.recommender.pipeline import build_table, promote_recommender, train_and_log

    table = build_table(settings)
    result = train_and_log(settings, table)
    d = promote_recommender(settings, table)
    print(f"recommender version {result.version}: {d.action} ({d.reason})")
    return {"version": result.version, "metrics": result.metrics, "action": d.action}


@task(cache_policy=NO_CACHE, log_prints=True)
def fit_offers(settings: Settings) -> dict[str, Any]:
    """Fit the offer policy on the offer history, register it, promote it by uplift."""
    from training.offers.pipeline import promote_offers, train_and_log_offers

    result = train_and_log_offers(settings)
    d = promote_offers(settings)
    print(f"offer policy version {result.version}: {d.action} ({d.reason})")
    return {"version": result.version, "metrics": result.metrics, "action": d.action}


@flow(name="train", log_prints=True)
def train(
    data_hash: str | None = None,
    trials: int | None = None,
    workers: int = 1,
    tune: bool = True,
    root: str | None = None,
    recommender: bool = False,
    offers: bool = False,
) -> dict[str, Any]:
    """Tune, train the best, evaluate, register as challenger and promote by rule.

    Args:
        data_hash: DVC md5 of the data the feature table came from (from the data pipeline).
        trials: Optuna trial budget (default `tuning.trials`).
        workers: tuning worker processes.
        tune: False trains with `params.yaml` `churn:` as is.
        root: the project directory (default: this project, or `$PAYCYCLE_ROOT`).
        recommender: also train, register and promote the recommender.
        offers: also fit, register and promote the offer policy (after the churn champion,
            whose probabilities it uses).

    Returns:
        Best params, the trained version with its holdout metrics, the promotion decision, and
        the recommender's and offer policy's outcomes when asked for.
    """
    settings = config.load(root=root) if root else config.load()
    best = tune_params(settings, trials, workers) if tune else {}
    trained = train_best(settings, best, data_hash)
    decision = promote(settings)
    out = {"best_params": best, **trained, "promotion": decision}
    if recommender:
        out["recommender"] = train_recommender(settings)
    if offers:
        out["offers"] = fit_offers(settings)
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--data-hash")
    args = parser.parse_args()
    print(train(data_hash=args.data_hash, trials=args.trials, workers=args.workers))
