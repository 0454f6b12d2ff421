"""Batch scoring at scale: 1M customers in one process vs. a 2-worker Dask LocalCluster.

Run: `python -m benchmarks.bench_scale [--customers N] [--chunk N] [--name NAME]`. The 10M check
of the 4 GiB-per-worker budget (not in `make bench`: the simulation alone takes ~4.5 min) is
`--customers 10000000 --name scale_10m`, written to `results/scale_10m.json`.

Simulates `--customers` × 12 months in `--chunk`-customer partitions, trains a small churn
champion in a temp MLflow store, then scores `as_of` end to end (read partition → features →
compiled model → Parquet) twice:

* `local`: `inference.batch.score_all` in this process (models warm, TF on `scoring.tf_threads`);
* `cluster`: the Prefect flow on a `LocalCluster` of 2 single-threaded workers (4 GiB limit each),
  run once cold (workers import TF and load the model) and once warm; the warm run is the figure.

The store upsert is left out (loading 1M customers into PostgreSQL first would dominate the
run; `tests/integration/test_dask_scoring.py` covers the upsert). Peak RSS is each worker
process's `ru_maxrss` after its partitions: memory is bounded by the partition size, not the
customer count, since a worker holds one partition at a time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import timer, write_result

AS_OF = dt.date(2025, 12, 1)
GOAL_PER_MIN = 1_000_000


def _phase_seconds(parts: list[dict]) -> dict[str, float]:
    keys = ("read_seconds", "feature_seconds", "score_seconds", "write_seconds")
    return {k: float(sum(p[k] for p in parts)) for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=250_000, help="customers per partition")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--name", default="scale", help="result file: results/<name>.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        work = Path(tmp)
        os.environ["PREFECT_HOME"] = str(work / "prefect")  # the temporary API's database
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

        from distributed import LocalCluster

        from flows.score import prefect_api, run_batch_score
        from inference.batch import load_models, resolve_versions, score_all, summarise
        from inference.score_io import read_scores
        from paycycle import config
        from paycycle.sim.simulator import SimSpec, simulate
        from training.churn.pipeline import bootstrap_champion

        print("training a small champion ...", flush=True)
        uri = bootstrap_champion(work / "champion")
        (work / "project").mkdir()
        (work / "project" / "params.yaml").write_text(
            (Path(__file__).resolve().parent.parent / "params.yaml").read_text()
        )
        os.environ["MLFLOW_TRACKING_URI"] = uri
        settings = config.load(root=work / "project")
        print(f"simulating {args.customers:,} customers ...", flush=True)
        with timer() as sim_t:
            simulate(
                SimSpec(customers=args.customers, months=12, seed=1, chunk_customers=args.chunk),
                settings.raw_dir,
                settings.truth_dir,
            )

        versions = resolve_versions(settings)
        load_models(settings, versions)  # warm: the local figure is steady-state throughput
        print("scoring in one process ...", flush=True)
        start = time.perf_counter()
        local = summarise(
            score_all(settings, AS_OF, work / "local", store=False, versions=versions),
            time.perf_counter() - start,
        )
        print(f"local: {local['customers_per_min']:,.0f}/min", flush=True)

        print(f"scoring on a LocalCluster of {args.workers} workers ...", flush=True)
        p = settings.params.scoring
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                memory_limit=p.memory_limit,
                processes=True,
                dashboard_address=":0",
            ) as cluster,
            prefect_api(),
        ):
            root = str(settings.root)
            out = str(work / "cluster")
            with timer() as cold_t:
                cold = run_batch_score(
                    AS_OF, out, store=False, root=root, address=cluster.scheduler_address
                )
            warm = run_batch_score(
                AS_OF, out, store=False, root=root, address=cluster.scheduler_address
            )
        print(f"cluster: {warm['customers_per_min']:,.0f}/min", flush=True)

        a = read_scores(work / "local", AS_OF)
        b = read_scores(work / "cluster", AS_OF)
        same_ids = a["customer_id"].tolist() == b["customer_id"].tolist()
        diff = (
            float(np.abs(a["churn_probability"] - b["churn_probability"]).max())
            if same_ids
            else 1.0
        )

    phases = _phase_seconds(local["parts"])
    busy = sum(phases.values())
    peak_all = max((q["peak_rss_bytes"] for q in warm["parts"] + cold["parts"]), default=0)
    metrics = {
        "customers_per_min_local": local["customers_per_min"],
        "customers_per_min_cluster": warm["customers_per_min"],
        "peak_rss_gib_per_worker": warm["peak_rss_gib_per_worker"],
        "cluster_vs_local_ratio": warm["customers_per_min"] / local["customers_per_min"],
        # the figures above count customers scored (active on as_of); these count the base read
        "base_customers_per_min_local": args.customers / local["seconds"] * 60,
        "base_customers_per_min_cluster": args.customers / warm["seconds"] * 60,
        "customers_per_min_cluster_cold": cold["rows"] / cold_t["seconds"] * 60,
        "peak_rss_gib_local_process": local["peak_rss_gib_per_worker"],
        "max_abs_diff_local_vs_cluster": diff,
        "rows_scored": local["rows"],
        "partitions": local["partitions"],
        "seconds_local": local["seconds"],
        "seconds_cluster": warm["seconds"],
        "seconds_cluster_cold": cold_t["seconds"],
        "seconds_simulate": sim_t["seconds"],
        "share_read": phases["read_seconds"] / busy,
        "share_features": phases["feature_seconds"] / busy,
        "share_score": phases["score_seconds"] / busy,
        "share_write": phases["write_seconds"] / busy,
        "peak_rss_gib_any_worker_any_run": peak_all / 2**30,
    }
    path = write_result(
        args.name,
        {
            "customers": args.customers,
            "months": 12,
            "chunk_customers": args.chunk,
            "workers": args.workers,
            "threads_per_worker": 1,
            "memory_limit": p.memory_limit,
            "as_of": AS_OF.isoformat(),
            "store": False,
        },
        metrics,
        {
            "customers_per_min_local": f">= {GOAL_PER_MIN}",
            "customers_per_min_cluster": f">= {GOAL_PER_MIN}",
            "peak_rss_gib_per_worker": "<= 4",
            "max_abs_diff_local_vs_cluster": "<= 1e-06",
        },
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
