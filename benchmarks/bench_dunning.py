"""Decline-aware dunning vs Stripe-like and Paddle-like fixed schedules on the same failures.

Run: `python -m benchmarks.bench_dunning [--customers 50000] [--seed 7]`. Simulates; takes every
invoice whose first charge failed (`truth/dunning`, with pre-drawn per-day uniforms, so each
schedule meets the same luck); applies the policy (`retention.dunning.plan_dunning`, `params.yaml`
`dunning` caps), Stripe-like (8 retries within 2 weeks, hard declines never retried) and
Paddle-like (7 retries over 30 days, every decline); and scores recovered revenue (USD) and
attempts per failure with `retention.dunning_eval.evaluate_plans`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import timer, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7, help="simulation seed")
    args = parser.parse_args()

    from paycycle import config
    from paycycle.sim.simulator import SimSpec, simulate
    from paycycle.tables import read_table
    from retention.dunning import paddle_like, plan_dunning, stripe_like
    from retention.dunning_eval import evaluate_plans

    params = config.load().params.dunning
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        simulate(SimSpec(args.customers, args.months, args.seed), root / "raw", root / "truth")
        failures = read_table(root / "truth", "dunning")
    amount = failures["amount_usd"].to_numpy(float)
    planners = {
        "policy": lambda code, day: plan_dunning(code, day, params),
        "stripe_like": stripe_like,
        "paddle_like": paddle_like,
    }
    metrics: dict[str, float] = {"failures": float(len(failures))}
    with timer() as t:
        for name, planner in planners.items():
            s = evaluate_plans(failures, planner).summary(amount)
            metrics[f"recovered_{name}"] = round(s["recovered_usd"], 2)
            metrics[f"recovery_rate_{name}"] = s["recovery_rate"]
            metrics[f"attempts_per_failure_{name}"] = s["attempts_per_failure"]
    metrics["failed_usd"] = round(float(amount.sum()), 2)
    metrics["policy_vs_best_baseline"] = metrics["recovered_policy"] / max(
        metrics["recovered_stripe_like"], metrics["recovered_paddle_like"]
    )
    metrics["attempts_policy_minus_min_baseline"] = metrics["attempts_per_failure_policy"] - min(
        metrics["attempts_per_failure_stripe_like"], metrics["attempts_per_failure_paddle_like"]
    )
    metrics["evaluate_seconds"] = t["seconds"]
    path = write_result(
        "dunning",
        {
            "customers": args.customers,
            "months": args.months,
            "seed": args.seed,
            "dunning": params.model_dump(),
        },
        metrics,
        {"policy_vs_best_baseline": "> 1", "attempts_policy_minus_min_baseline": "<= 0"},
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
