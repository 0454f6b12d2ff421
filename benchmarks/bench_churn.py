"""Churn model vs the oracle on 20k simulated customers, default params.

Run: `python -m benchmarks.bench_churn [--customers 20000]`. Simulates, builds the feature table,
trains with `params.yaml` `churn:` defaults on the earlier snapshots and scores the exported
(compiled) model on the last snapshot next to the simulator's true probabilities.
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
    args = parser.parse_args()

    from features.build import attach_oracle
    from features.table import snapshot_dates, write_feature_table
    from inference.churn import load_scorer
    from paycycle import config
    from paycycle.sim.simulator import SimSpec, simulate
    from training.churn.behaviour import seed_frame
    from training.churn.evaluate import evaluate_churn
    from training.churn.model import export_churn, split_holdout, train_churn

    settings = config.load()
    d, fp, params = settings.params.data, settings.params.features, settings.params.churn
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        simulate(SimSpec(customers=args.customers, months=d.months, seed=args.seed),
                 root / "raw", root / "truth")  # fmt: skip
        dates = snapshot_dates(d.start_date, d.months, fp.snapshots, fp.horizon_days)
        table = write_feature_table(root / "raw", root / "features.parquet", dates)
        train, holdout = split_holdout(table)
        holdout = attach_oracle(holdout, root / "truth")
        with timer() as fit:
            trained = train_churn(train, params)
        scorer = load_scorer(export_churn(trained, root / "model"))
        with timer() as score:
            p = scorer(holdout)
        m = evaluate_churn(holdout["churned"].to_numpy(), p, holdout["oracle_p"].to_numpy())
        seed_p = scorer(seed_frame()).round(4).tolist()
    metrics = {
        "oracle_auc_ratio": m["oracle_auc_ratio"],
        "auc": m["auc"],
        "oracle_auc": m["oracle_auc"],
        "brier": m["brier"],
        "oracle_brier": m["oracle_brier"],
        "pr_auc": m["pr_auc"],
        "oracle_pr_auc": m["oracle_pr_auc"],
        "ece": m["ece"],
        "lift_top_decile": m["lift_top_decile"],
        "seed_monotone": int(seed_p[0] < seed_p[1] < seed_p[2]),
        "train_seconds": fit["seconds"],
        "best_epoch": trained.best_epoch,
        "holdout_rows": len(holdout),
        "score_rows_per_s": len(holdout) / score["seconds"],
    }
    path = write_result(
        "churn",
        {
            "customers": args.customers,
            "months": d.months,
            "sim_seed": args.seed,
            "snapshots": fp.snapshots,
            "churn": params.model_dump(mode="json"),
            "seed_customers_p": seed_p,
        },  # fmt: skip
        metrics,
        {"oracle_auc_ratio": ">= 0.95", "seed_monotone": "== 1"},
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
