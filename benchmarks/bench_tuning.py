"""Optuna with vs without pruning: same trials, same seed, same data.

Run: `python -m benchmarks.bench_tuning [--customers 3000 --trials 12 --epochs 30]`. Two studies
(median pruning on per-epoch validation AUC, and no pruning) each run `--trials` trials in this
process on the same training snapshots; MLflow logging is off so the ratio measures tuning alone.
`pruning_speedup` = wall time without ÷ with pruning; `best_value_delta` = best val AUC without
− with pruning (≤ 0.005 means pruning found the same optimum).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import timer, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3_000)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--patience", type=int, default=10, help="early-stopping patience inside each trial"
    )
    args = parser.parse_args()

    from features.table import snapshot_dates, write_feature_table
    from paycycle import config
    from paycycle.simulator import SimSpec, simulate
    from training.churn import split_holdout
    from training.tune import counts, create_study, make_storage, run_worker

    settings = config.load()
    churn = settings.params.churn.model_copy(update={"patience": args.patience})
    settings = settings.model_copy(
        update={"params": settings.params.model_copy(update={"churn": churn})}
    )
    d, fp, tuning = settings.params.data, settings.params.features, settings.params.tuning
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        simulate(SimSpec(customers=args.customers, months=d.months, seed=3), root / "raw",
                 root / "truth")  # fmt: skip
        dates = snapshot_dates(d.start_date, d.months, fp.snapshots, fp.horizon_days)
        train, _ = split_holdout(write_feature_table(root / "raw", root / "f.parquet", dates))
        for label, pruning in (("pruned", True), ("unpruned", False)):
            url = f"sqlite:///{root}/{label}.db"
            with timer() as t:
                run_worker(settings, label, url, args.trials, epochs=args.epochs,
                           pruning=pruning, train=train, track=False)  # fmt: skip
            study = create_study(make_storage(url, tuning), label, tuning, pruning)
            runs[label] = {"seconds": t["seconds"], "best": study.best_value, **counts(study)}
            print(label, runs[label], flush=True)
    metrics = {
        "pruning_speedup": runs["unpruned"]["seconds"] / runs["pruned"]["seconds"],
        "best_value_delta": runs["unpruned"]["best"] - runs["pruned"]["best"],
        "seconds_pruned": runs["pruned"]["seconds"],
        "seconds_unpruned": runs["unpruned"]["seconds"],
        "best_val_auc_pruned": runs["pruned"]["best"],
        "best_val_auc_unpruned": runs["unpruned"]["best"],
        "trials_pruned": runs["pruned"]["pruned"],
    }
    path = write_result(
        "tuning",
        {
            "customers": args.customers,
            "trials": args.trials,
            "epochs": args.epochs,
            "sampler": "TPE",
            "seed": tuning.seed,
            "pruner": "median",
            "startup_trials": tuning.startup_trials,
            "warmup_epochs": tuning.warmup_epochs,
        },  # fmt: skip
        metrics,
        {"pruning_speedup": ">= 2", "best_value_delta": "<= 0.005"},
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
