"""Optuna with vs without pruning: same sampler and seed, same trial budget, same data.

Run: `python -m benchmarks.bench_tuning [--customers 3000 --trials 24 --epochs 30]`. Two studies
over the same training snapshots — one pruned with `tuning.pruner` (or `--pruner`) on the
per-epoch validation AUC, one with no pruner — each run `--trials` trials of `--epochs` epochs
through `training.churn.tune` (`create_study`, `make_objective`); MLflow logging is off so the ratio
measures tuning alone. `pruning_speedup` = wall time without ÷ with pruning; `best_value_delta` =
best val AUC without − with pruning (≤ 0.005 means pruning found the same optimum).

How the comparison is kept fair:
- Both arms use the same seeded TPE sampler and the same trial budget, so their random start-up
  trials are identical and TPE then explores from there; neither arm skips training.
- Early-stopping patience is the same and large in BOTH arms (10 of 30 epochs; the product's
  `churn.patience` is 5): a short patience already stops every trial a few epochs after its
  peak, an unmeasured pruning of its own that leaves the pruner nothing to save. It is not
  switched off altogether: train_churn always early-stops, and configurations that peak within
  an epoch or two (large, fast-learning nets) would then idle for the whole budget in both arms,
  which measures wasted epochs, not pruning. 10 epochs is twice the longest plateau seen
  before a later improvement (48 trials of 24 epochs: 5), so it does not change trial values.
- The arms run interleaved in this one process, one trial each in turn (ABBA order), and each
  arm's seconds are the sum of its own trials: on this shared machine a busy spell lands on
  both arms alike. One untimed warm-up fit pays TensorFlow's one-off start-up cost first.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import timer, write_result

ARMS = ("pruned", "unpruned")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3_000)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--patience", type=int, default=10, help="early-stopping patience inside each trial (both)"
    )
    parser.add_argument(
        "--pruner", choices=("median", "asha", "hyperband"), help="default: tuning.pruner"
    )
    args = parser.parse_args()

    from features.table import snapshot_dates, write_feature_table
    from paycycle import config
    from paycycle.sim.simulator import SimSpec, simulate
    from training.churn.model import split_holdout, train_churn
    from training.churn.tune import counts, create_study, make_objective, make_storage

    settings = config.load()
    patience = args.patience
    churn = settings.params.churn.model_copy(update={"patience": patience})
    tuning = settings.params.tuning
    if args.pruner:
        tuning = tuning.model_copy(update={"pruner": args.pruner})
    settings = settings.model_copy(
        update={"params": settings.params.model_copy(update={"churn": churn, "tuning": tuning})}
    )
    d, fp = settings.params.data, settings.params.features
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        simulate(SimSpec(customers=args.customers, months=d.months, seed=3), root / "raw",
                 root / "truth")  # fmt: skip
        dates = snapshot_dates(d.start_date, d.months, fp.snapshots, fp.horizon_days)
        train, _ = split_holdout(write_feature_table(root / "raw", root / "f.parquet", dates))
        train_churn(train, churn, epochs=2)  # untimed warm-up: TF start-up, first tracing
        studies, seconds = {}, dict.fromkeys(ARMS, 0.0)
        for label in ARMS:
            storage = make_storage(f"sqlite:///{root}/{label}.db", tuning)
            studies[label] = create_study(storage, label, tuning, label == "pruned", args.epochs)
        objective = make_objective(settings, train, args.epochs, track=False)
        for i in range(args.trials):
            for label in ARMS if i % 2 == 0 else ARMS[::-1]:
                with timer() as t:
                    studies[label].optimize(objective, n_trials=1)
                seconds[label] += t["seconds"]
                steps = studies[label].trials[-1].intermediate_values
                state = studies[label].trials[-1].state.name
                value = max(steps.values(), default=float("nan"))
                print(f"{label:>8} #{i:<2} {state:<8} epochs={len(steps):<2} val_auc={value:.4f}"
                      f" {t['seconds']:.1f}s", flush=True)  # fmt: skip
    runs = {}
    for label, study in studies.items():
        epochs_run = sum(len(t.intermediate_values) for t in study.trials)
        runs[label] = {"seconds": seconds[label], "best": study.best_value,
                       "epochs": epochs_run, "best_params": study.best_params,
                       **counts(study)}  # fmt: skip
        print(label, runs[label], flush=True)
    pruned, unpruned = runs["pruned"], runs["unpruned"]
    metrics = {
        "pruning_speedup": unpruned["seconds"] / pruned["seconds"],
        "best_value_delta": unpruned["best"] - pruned["best"],
        "seconds_pruned": pruned["seconds"],
        "seconds_unpruned": unpruned["seconds"],
        "best_val_auc_pruned": pruned["best"],
        "best_val_auc_unpruned": unpruned["best"],
        "trials_pruned": pruned["pruned"],
        "trials_complete_pruned": pruned["complete"],
        "epochs_trained_pruned": pruned["epochs"],
        "epochs_trained_unpruned": unpruned["epochs"],
    }
    path = write_result(
        "tuning",
        {
            "customers": args.customers,
            "trials": args.trials,
            "epochs": args.epochs,
            "patience": patience,
            "sampler": "TPE",
            "seed": tuning.seed,
            "startup_trials": tuning.startup_trials,
            "pruner": tuning.pruner,
            "warmup_epochs": tuning.warmup_epochs,
            "reduction_factor": tuning.reduction_factor,
            "reported_value": "best val_auc so far",
            "order": "interleaved, one trial per arm in turn (ABBA)",
            "best_params_pruned": pruned["best_params"],
            "best_params_unpruned": unpruned["best_params"],
        },
        metrics,
        {"pruning_speedup": ">= 2", "best_value_delta": "<= 0.005"},
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
