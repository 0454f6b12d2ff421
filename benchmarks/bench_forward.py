"""The churn model's per-call cost in process: the packed TF graph vs the NumPy forward pass.

Run: `python -m benchmarks.bench_forward [--calls 2000]`. Builds the `params.yaml` churn
architecture (the cost does not depend on the weights, so it trains one epoch on 2,000
synthetic rows), exports it, loads it as the service does and times `compile_scorer`'s function
on request columns of 1, 8 and 100 customers: the NumPy pass (`scorer.forward`) and the TF graph
(the same scorer with the NumPy pass taken away). Median of 5 repeats of `--calls` calls each.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_result


def _synthetic(n: int, seed: int = 0):
    import pandas as pd

    from inference.churn import default_spec

    spec = default_spec()
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {c: float(spec.defaults[c]) * rng.uniform(0, 3, n) for c in spec.numeric}
        | {c: rng.choice(spec.vocabulary[c], n) for c in spec.categorical}
    )
    frame["churned"] = (rng.random(n) < 0.1).astype(int)
    return frame


def _per_call_us(score, cols, calls: int) -> float:
    score(cols)  # warm
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            score(cols)
        runs.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per timed repeat")
    args = parser.parse_args()

    from features.columns import customers_to_columns
    from inference.churn import load_scorer
    from inference.compiled import compile_scorer
    from inference.smoke import SEED_CUSTOMERS
    from paycycle import config
    from training.churn.model import export_churn, train_churn

    params = config.load().params.churn
    with tempfile.TemporaryDirectory() as tmp:
        trained = train_churn(_synthetic(2000), params, epochs=1)
        scorer = load_scorer(export_churn(trained, Path(tmp) / "churn"))
    numpy_pass = compile_scorer(scorer)
    assert numpy_pass is scorer.forward, "the export's NumPy pass was refused"
    scorer.forward = None
    graph = compile_scorer(scorer)
    metrics: dict[str, float] = {}
    for rows in (1, 8, 100):
        cols = customers_to_columns((SEED_CUSTOMERS * 34)[:rows])
        tf_us = _per_call_us(graph, cols, args.calls)
        np_us = _per_call_us(numpy_pass, cols, args.calls)
        metrics |= {
            f"tf_us_{rows}row": tf_us,
            f"numpy_us_{rows}row": np_us,
            f"speedup_{rows}row": tf_us / np_us,
        }
        print(f"{rows} row(s): TF graph {tf_us:.1f} us, NumPy {np_us:.1f} us per call")
    path = write_result(
        "forward",
        {"calls": args.calls, "hidden_units": list(params.hidden_units)},
        metrics,
        {"speedup_1row": ">= 10", "speedup_8row": ">= 10", "speedup_100row": ">= 2"},
    )
    print(path)


if __name__ == "__main__":
    main()
