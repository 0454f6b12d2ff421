"""Offer policy vs baselines: realised net retained revenue on a simulated holdout with truth.

Run: `python -m benchmarks.bench_offers [--customers 20000] [--budget 10000]`. Simulates; trains
the churn model (`training.churn.model`, `params.yaml` defaults) on the monthly snapshots before the
decision date (the last simulated month); learns P(accept) from the offers logged before it and
the retention effect from the offer months whose effect window closed; decides offers for every
customer at risk on the decision date under the budget; and scores the policy, no offers,
`discount_20` above 0.5 churn probability and random offers at the same budget with the truth's
hazard, acceptance probabilities and hazard multipliers (`training.offers.evaluate`).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import timer, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7, help="simulation seed")
    parser.add_argument("--budget", type=float, default=None, help="default: params offers.budget")
    args = parser.parse_args()

    from features.build import build_features, load_events
    from features.table import snapshot_dates, write_feature_table
    from inference.churn import load_scorer
    from paycycle import config
    from paycycle.calendar import month_starts
    from paycycle.sim.simulator import SimSpec, simulate
    from training.churn.model import export_churn, train_churn
    from training.offers.evaluate import compare_policies, load_truth
    from training.offers.learning import fit_offer_policy

    settings = config.load()
    d, fp, op = settings.params.data, settings.params.features, settings.params.offers
    budget = op.budget if args.budget is None else args.budget
    as_of = str(month_starts(d.start_date, d.months)[-2])  # the last simulated month
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        simulate(SimSpec(customers=args.customers, months=d.months, seed=args.seed),
                 root / "raw", root / "truth")  # fmt: skip
        dates = [x for x in snapshot_dates(d.start_date, d.months, fp.snapshots) if x < as_of]
        table = write_feature_table(root / "raw", root / "features.parquet", dates)
        with timer() as churn_fit:
            trained = train_churn(table, settings.params.churn)
        churn = load_scorer(export_churn(trained, root / "churn"))
        events = load_events(root / "raw")
        with timer() as policy_fit:
            policy = fit_offer_policy(events, as_of, op)
        frame = build_features(events, as_of)
        truth = load_truth(root / "truth", frame["customer_id"].to_numpy(), as_of)
        p_churn = churn(frame)
        m = compare_policies(policy, frame, p_churn, truth, budget, seed=args.seed)
        oracle_churn = compare_policies(policy, frame, truth.hazard, truth, budget, args.seed)
    effects = policy.effects
    metrics = {
        **m,
        "uplift_policy": m["net_revenue_policy"] - m["net_revenue_no_offers"],
        "uplift_threshold": m["net_revenue_threshold"] - m["net_revenue_no_offers"],
        "uplift_random": m["net_revenue_random"] - m["net_revenue_no_offers"],
        "uplift_policy_with_true_churn": oracle_churn["net_revenue_policy"]
        - oracle_churn["net_revenue_no_offers"],
        "customers_at_risk": float(len(frame)),
        "mean_p_churn": float(np.mean(p_churn)),
        "churn_train_seconds": churn_fit["seconds"],
        "policy_fit_seconds": policy_fit["seconds"],
    }
    path = write_result(
        "offers",
        {
            "customers": args.customers,
            "months": d.months,
            "sim_seed": args.seed,
            "as_of": as_of,
            "budget": budget,
            "offers": op.model_dump(mode="json"),
            "effect_estimates": {k: round(float(v), 4) for k, v in effects["effect"].items()},
            "effect_raw": {k: round(float(v), 4) for k, v in effects["effect_raw"].items()},
        },
        metrics,
        {
            "uplift_policy": "> 0",
        },
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
