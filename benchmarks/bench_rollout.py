"""Safe rollout: how fast a bad challenger is rolled back, client errors, cost of shadow mode.

One PayCycle service (a small champion trained for the run, its store migrated) and, in order:

1. `shadow_overhead`: `/churn` throughput with one customer per request at concurrency 32 (the
   serving benchmark's) by `wrk`, without a rollout and with a shadow rollout of a good
   challenger (the champion's artifact registered again), interleaved for `--rounds` rounds:
   1 − median shadow req/s ÷ median plain req/s.
2. Two bad challengers, each at a 10% canary (`tests.rollout_models`: one answers a constant
   0.99, one raises on every batch holding a marked customer, sent in a tenth of requests):
   once the service has loaded the challenger and routes, threads send single-customer
   requests; `rollback_seconds` is the slowest arm's time from its first request to the moment
   `/readyz` shows the rollout rolled back. `client_errors` counts non-200 answers over both
   arms, `alias_unchanged` whether `champion` stayed put.

    .venv/bin/python -m benchmarks.bench_rollout [--seconds 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks.bench_serving import customers, prepare_champion, wrk
from benchmarks.common import write_result
from serving.process import free_port, serve, wait_ready
from tests.rollout_models import service_env

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"rollback_seconds": "<= 30", "client_errors": "== 0", "shadow_overhead": "<= 0.10"}
CANARY = {"name": "canary-10", "percent": 10, "bake_s": 600}
STAGES = [
    {"name": "shadow", "percent": 0, "bake_s": 600},
    CANARY,
    {**CANARY, "name": "full", "percent": 100},
]
CONNECTIONS = 32
THREADS = 8


def _readyz(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/readyz", timeout=10).json().get("rollout") or {}


def _wait(url: str, done, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not done(status := _readyz(url)):
        if time.monotonic() > deadline:
            raise SystemExit(f"rollout did not get there in {timeout:g} s: {status}")
        time.sleep(0.05)
    return status


def _start(settings, stage: int) -> int:
    """Start a rollout of the current challenger and move it to `stage` at once."""
    from inference import rollout_state
    from paycycle.store import make_engine
    from training.rollout import start_rollout

    view = start_rollout(settings)
    if stage:
        rollout_state.move_to(make_engine(settings.db_url), view.rollout_id, stage, {})
    return view.rollout_id


def _good_challenger(settings) -> str:
    from inference.registry import CHALLENGER, CHAMPION, CHURN_MODEL, alias_version, client
    from training import tracking

    champion = alias_version(settings, CHURN_MODEL, CHAMPION)
    source = client(settings).get_model_version(CHURN_MODEL, champion).source
    version = tracking.register_version(settings, source, CHURN_MODEL, {"bench": "good"})
    tracking.set_alias(settings, CHURN_MODEL, CHALLENGER, version)
    return version


def shadow_runs(url: str, token: str, settings, work: Path, seconds: int, rounds: int):
    """(plain runs, shadow runs) of wrk at `CONNECTIONS`, interleaved."""
    from training.rollout import abort_rollout

    body = work / "one.json"
    body.write_text(httpx.Request("POST", url, json={"customers": customers(1)}).content.decode())
    _good_challenger(settings)
    plain, shadow = [], []
    for _ in range(rounds):
        plain.append(wrk(f"{url}/churn", body, token, CONNECTIONS, seconds))
        _start(settings, 0)
        _wait(url, lambda s: s.get("routing") and s.get("stage") == "shadow")
        shadow.append(wrk(f"{url}/churn", body, token, CONNECTIONS, seconds))
        abort_rollout(settings, "benchmark round over")
        _wait(url, lambda s: s.get("state") == "aborted")
    return plain, shadow


def bad_arm(url: str, token: str, settings, kind: str) -> dict[str, Any]:
    """Roll out a bad challenger at the 10% canary; time the rollback and count client errors."""
    from tests.rollout_models import RAISE_AT, register_bad_challenger

    register_bad_challenger(settings, kind)
    _start(settings, 1)
    _wait(url, lambda s: s.get("routing") and s.get("stage") == CANARY["name"])
    stop, statuses, lock = threading.Event(), [], threading.Lock()

    def send(worker: int) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
            n = 0
            while not stop.is_set():
                row = customers(1)[0] | {"customer_id": f"w{worker}-{n}"}
                if n % 10 == 0:
                    row["usage_pattern"] = RAISE_AT + 1
                status = http.post(f"{url}/churn", json={"customers": [row]}).status_code
                with lock:
                    statuses.append(status)
                n += 1

    threads = [threading.Thread(target=send, args=(w,)) for w in range(THREADS)]
    start = time.monotonic()
    for t in threads:
        t.start()
    ended = _wait(url, lambda s: s.get("state") == "rolled_back", timeout=120)
    seconds = time.monotonic() - start
    stop.set()
    for t in threads:
        t.join()
    errors = sum(s != 200 for s in statuses)
    print(f"{kind}: rolled back after {seconds:.1f} s, {len(statuses)} requests, {errors} errors")
    print(f"  reason: {ended['reason']}")
    return {
        "seconds": seconds,
        "requests": len(statuses),
        "errors": errors,
        "reason": ended["reason"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="wrk duration per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="plain/shadow pairs; medians")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    from inference.registry import CHAMPION, CHURN_MODEL, alias_version
    from paycycle import config
    from paycycle.store import upgrade

    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
        work = Path(tmp)
        uri = prepare_champion(work / "champion")
        root = work / "project"
        (root / "data").mkdir(parents=True)
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        params["drift"]["log_requests"] = False
        params["rollout"] = {**params["rollout"], "stages": STAGES}
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        store = f"sqlite:///{root / 'store.db'}"
        upgrade(store)
        settings = config.load(root=root, mlflow_tracking_uri=uri, database_url=store)
        os.environ.setdefault("PAYCYCLE_ACTOR", "bench-rollout")
        token, port = secrets.token_urlsafe(24), free_port()
        env = service_env(root, uri, store, token)
        with serve("serving.service:PayCycle", port, env, work / "service.log") as proc:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url, proc, work / "service.log")
            champion = alias_version(settings, CHURN_MODEL, CHAMPION)
            plain, shadow = shadow_runs(url, token, settings, work, args.seconds, args.rounds)
            arms = {kind: bad_arm(url, token, settings, kind) for kind in ("constant", "raising")}
            unchanged = alias_version(settings, CHURN_MODEL, CHAMPION) == champion
    plain_rps = statistics.median(r["rps"] for r in plain)
    shadow_rps = statistics.median(r["rps"] for r in shadow)
    metrics = {
        "rollback_seconds": max(a["seconds"] for a in arms.values()),
        "client_errors": sum(a["errors"] for a in arms.values())
        + sum(r["errors"] for r in plain + shadow),
        "shadow_overhead": 1 - shadow_rps / plain_rps,
        "plain_rps_c32": plain_rps,
        "shadow_rps_c32": shadow_rps,
        "alias_unchanged": float(unchanged),
        **{f"rollback_seconds_{k}": a["seconds"] for k, a in arms.items()},
        **{f"requests_{k}": a["requests"] for k, a in arms.items()},
    }
    params_out = {
        "seconds": args.seconds,
        "rounds": args.rounds,
        "connections": CONNECTIONS,
        "canary_percent": CANARY["percent"],
        "bad_arm_threads": THREADS,
        "reasons": {k: a["reason"] for k, a in arms.items()},
    }
    path = write_result("rollout", params_out, metrics, GOALS)
    print(f"wrote {path}")
    for key, value in metrics.items():
        print(f"{key}: {value:.4g}")


if __name__ == "__main__":
    main()
