"""Load test of the serving API against a bare Starlette endpoint and a trivial BentoML one.

Starts `benchmarks.starlette_service:app` (uvicorn, no BentoML: the ceiling),
`benchmarks.trivial_service:Trivial` and `serving.service:PayCycle` as subprocesses on free
127.0.0.1 ports, then drives them with `wrk` (its own process; `apt-get install -y wrk`) at
concurrency 1, 8 and 32: the Starlette endpoint (with the one-customer `/churn` body), the
trivial endpoint, `/churn` with 1 customer and with 100 customers per request, and `/churn` on
a second PayCycle process with the request log switched off (`drift.log_requests: false`),
interleaved per concurrency level so all see the same machine load, the whole sequence
repeated `--rounds` times (medians reported: one 8 s run on a 2-core VM varies by ±15%).
wrk corrects its percentiles for coordinated omission, so one 100 ms stall (a garbage
collection, say) shows up in p99: see `serving/traffic.py`.
`request_log_overhead` = 1 − throughput with the log ÷ throughput without it;
`churn_vs_starlette_ratio` = `/churn`'s best throughput ÷ the Starlette endpoint's (issue 19).

The champion comes from `--tracking-uri` (an MLflow store with `paycycle-churn@champion`), or, by
default, a small model trained and registered in a temporary store for this run.

    .venv/bin/python -m benchmarks.bench_serving [--seconds 8] [--rounds 3] [--tracking-uri URI]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import write_result
from serving.process import free_port, serve, wait_ready

ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = (1, 8, 32)
GOALS = {
    "churn_vs_starlette_ratio": ">= 0.5",
    "churn_vs_trivial_ratio": ">= 0.9",
    "p99_ms_c8": "<= 10",
    "p99_vs_trivial_c32": "<= 1.2",
    "customers_per_s_batch100": ">= 20000",
    "request_log_overhead": "<= 0.05",
}
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("WRK_AUTH")
local f = io.open(os.getenv("WRK_BODY"), "r")
wrk.body = f:read("*a")
f:close()
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def customers(n: int) -> list[dict[str, Any]]:
    """Deterministic, valid customers spread over the seed features."""
    return [
        {
            "customer_id": f"c{i}",
            "subscription_duration": float(i % 36),
            "failed_payments": float(i % 4),
            "usage_pattern": float((i * 7) % 120),
        }
        for i in range(n)
    ]


def wrk(url: str, body_path: Path, token: str, connections: int, seconds: int) -> dict[str, float]:
    """One wrk run; returns req/s, p50/p99 in ms and the error count."""
    script = body_path.with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    env = {**os.environ, "WRK_BODY": str(body_path), "WRK_AUTH": f"Bearer {token}"}
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script)]
    out = subprocess.run([*cmd, url], env=env, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.split("RESULT", 1)[1])
    return {
        "rps": result["requests"] / (result["duration_us"] / 1e6),
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "errors": result["errors"],
    }


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per figure, the median over the rounds (errors: the total)."""
    out = {k: float(statistics.median(r[k] for r in runs)) for k in ("rps", "p50_ms", "p99_ms")}
    return out | {"errors": sum(r["errors"] for r in runs)}


def project_root(work: Path, name: str, log_requests: bool) -> Path:
    """A project folder for one service: the repo's params.yaml with request logging on/off
    (the logged service writes its request log under it, not into the repo)."""
    root = work / name
    (root / "data").mkdir(parents=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params.setdefault("drift", {})["log_requests"] = log_requests
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def logged(root: Path) -> tuple[int, int]:
    """Rows and files the logged service wrote to its request log (flushed on shutdown too),
    counted from the Parquet footers."""
    import pyarrow.parquet as pq

    files = list((root / "data" / "requests").glob("date=*/*.parquet"))
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files), len(files)


def prepare_champion(workdir: Path) -> str:
    """Train a small churn model, register it as champion in a temp store; return its URI."""
    from training.churn.pipeline import bootstrap_champion

    return bootstrap_champion(workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="wrk duration per measurement")
    parser.add_argument(
        "--rounds", type=int, default=3, help="repeat every measurement; report the medians"
    )
    parser.add_argument("--tracking-uri", help="MLflow store holding paycycle-churn@champion")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    work = Path(tempfile.mkdtemp(prefix="bench_serving_"))
    token = secrets.token_urlsafe(24)
    tracking_uri = args.tracking_uri or prepare_champion(work)
    env = {
        **os.environ,
        "PAYCYCLE_API_TOKEN": token,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "BENTOML_HOME": str(work / "bentoml"),
    }
    bodies = {
        "starlette": json.dumps({"customers": customers(1)}),
        "trivial": json.dumps({"value": 1.0}),
        "churn1": json.dumps({"customers": customers(1)}),
        "churn1_nolog": json.dumps({"customers": customers(1)}),  # right after its twin
        "churn100": json.dumps({"customers": customers(100)}),
    }
    paths = {}
    for name, body in bodies.items():
        paths[name] = work / f"{name}.json"
        paths[name].write_text(body)
    ports = {name: free_port() for name in ("starlette", "trivial", "service", "nolog")}
    roots = {
        "service": project_root(work, "logged", True),
        "nolog": project_root(work, "nolog", False),
    }
    load_before = os.getloadavg()[0]
    with ExitStack() as stack:
        procs = {}
        for name, target, server in (
            ("starlette", "benchmarks.starlette_service:app", "uvicorn"),
            ("trivial", "benchmarks.trivial_service:Trivial", "bentoml"),
            ("service", "serving.service:PayCycle", "bentoml"),
            ("nolog", "serving.service:PayCycle", "bentoml"),
        ):
            log = work / f"{name}.log"
            env_one = {**env, "PAYCYCLE_ROOT": str(roots.get(name, work))}
            proc = stack.enter_context(serve(target, ports[name], env_one, log, server))
            procs[name] = (proc, log)
        for name, (proc, log) in procs.items():
            wait_ready(f"http://127.0.0.1:{ports[name]}", proc, log)
        urls = {
            "starlette": f"http://127.0.0.1:{ports['starlette']}/trivial",
            "trivial": f"http://127.0.0.1:{ports['trivial']}/trivial",
            "churn1": f"http://127.0.0.1:{ports['service']}/churn",
            "churn100": f"http://127.0.0.1:{ports['service']}/churn",
            "churn1_nolog": f"http://127.0.0.1:{ports['nolog']}/churn",
        }
        for name in bodies:  # warm up connections, caches and traced shapes
            wrk(urls[name], paths[name], token, 8, 2)
        runs: dict[str, dict[int, list[dict[str, float]]]] = {k: {} for k in bodies}
        for round_no in range(args.rounds):
            for c in CONCURRENCY:
                for name in bodies:
                    r = wrk(urls[name], paths[name], token, c, args.seconds)
                    runs[name].setdefault(c, []).append(r)
                    print(
                        f"round {round_no + 1} {name:12s} c={c:<3d} {r['rps']:8.0f} req/s  "
                        f"p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
                        f"errors {r['errors']}",
                        flush=True,
                    )
        results = {
            name: {c: median_run(rs) for c, rs in by_c.items()} for name, by_c in runs.items()
        }
    starlette_rps = max(r["rps"] for r in results["starlette"].values())
    trivial_rps = max(r["rps"] for r in results["trivial"].values())
    churn_rps = max(r["rps"] for r in results["churn1"].values())
    nolog_rps = max(r["rps"] for r in results["churn1_nolog"].values())
    rows_logged, files_logged = logged(roots["service"])
    metrics: dict[str, float] = {
        "starlette_rps": starlette_rps,
        "trivial_rps": trivial_rps,
        "churn_rps": churn_rps,
        "churn_vs_starlette_ratio": churn_rps / starlette_rps,
        "churn_vs_trivial_ratio": churn_rps / trivial_rps,
        "p99_ms_c8": results["churn1"][8]["p99_ms"],
        "p99_ms_c32": results["churn1"][32]["p99_ms"],
        "trivial_p99_ms_c32": results["trivial"][32]["p99_ms"],
        "p99_vs_trivial_c32": results["churn1"][32]["p99_ms"] / results["trivial"][32]["p99_ms"],
        "customers_per_s_batch100": 100 * max(r["rps"] for r in results["churn100"].values()),
        "churn_nolog_rps": nolog_rps,
        "request_log_overhead": 1 - churn_rps / nolog_rps,
        "logged_rows": rows_logged,
        "logged_files": files_logged,
        "errors": sum(r["errors"] for by_c in results.values() for r in by_c.values()),
    }
    levels = {
        f"{name}_c{c}": {k: round(v, 2) for k, v in r.items()}
        for name, by_c in results.items()
        for c, r in by_c.items()
    }
    path = write_result(
        "serving",
        params={
            "concurrency": list(CONCURRENCY),
            "seconds_per_run": args.seconds,
            "rounds": args.rounds,
            "aggregate": "median over rounds of req/s, p50 and p99 per endpoint and level",
            "load_generator": "wrk -t1",
            "throughput": "best req/s over the concurrency levels, same for every endpoint",
            "workers": 1,
            "levels": levels,
            # other processes on the box skew absolute figures (ratios are same-run)
            "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
        metrics=metrics,
        goals=GOALS,
    )
    print(json.dumps({k: round(v, 3) for k, v in metrics.items()}, indent=1))
    print(f"wrote {path}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
