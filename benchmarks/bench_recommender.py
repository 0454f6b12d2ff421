"""Recommender vs the oracle on 20k simulated customers, logged in MLflow.

Run: `python -m benchmarks.bench_recommender [--customers 20000] [--no-log]`. Simulates, builds
the recommender's snapshots (inputs at each month start, organic adoptions in the next
`recommend.window_days`), trains on the snapshots whose label window closes before the last one,
scores the exported (compiled) model on the last snapshot and ranks the same candidates by the
simulator's true adoption probabilities. The run is logged to the project's MLflow store
(experiment `paycycle-recommender`, not registered).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import timer, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7, help="simulation seed")
    parser.add_argument("--no-log", action="store_true", help="do not log an MLflow run")
    args = parser.parse_args()

    from features.build import load_events
    from paycycle import config
    from paycycle.sim.simulator import SimSpec, simulate
    from training.recommender import data as rd
    from training.recommender.pipeline import train_and_log

    settings = config.load()
    d, params = settings.params.data, settings.params.recommend
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        simulate(SimSpec(customers=args.customers, months=d.months, seed=args.seed),
                 root / "raw", root / "truth")  # fmt: skip
        dates = rd.rec_snapshot_dates(d.start_date, d.months, params.window_days)
        with timer() as build:
            table = rd.build_rec_table(load_events(root / "raw"), dates, params.window_days)
        with timer() as fit:
            result = train_and_log(settings, table, params, truth_dir=root / "truth",
                                   register=False, log=not args.no_log,
                                   run_name=f"bench-{args.customers}")  # fmt: skip
    m, k = result.metrics, params.k
    metrics = {
        "recall_at_3_oracle_ratio": m[f"recall_at_{k}_oracle_ratio"],
        "ndcg_at_3": m[f"ndcg_at_{k}"],
        "recall_at_3": m[f"recall_at_{k}"],
        "oracle_recall_at_3": m[f"oracle_recall_at_{k}"],
        "oracle_ndcg_at_3": m[f"oracle_ndcg_at_{k}"],
        "ndcg_at_3_oracle_ratio": m[f"ndcg_at_{k}_oracle_ratio"],
        "holdout_adopters": m["eval_rows"],
        "train_rows": m["rows_train"],
        "best_epoch": m["best_epoch"],
        "build_seconds": build["seconds"],
        "train_seconds": fit["seconds"],
    }
    path = write_result(
        "recommender",
        {
            "customers": args.customers,
            "months": d.months,
            "sim_seed": args.seed,
            "snapshots": len(dates),
            "mlflow_run_id": result.run_id,
            "recommend": params.model_dump(mode="json"),
        },
        metrics,
        {"recall_at_3_oracle_ratio": ">= 0.85"},
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
