"""`make demo`: the whole PayCycle loop on embedded defaults, end to end, in one command.

simulate 20k customers → DVC + Great Expectations → point-in-time features (`flows.pipeline`) →
Optuna (small budget) + churn, recommender and offer policy trained, registered and promoted by
rule (`flows.train`) → the store loaded → every customer batch-scored and the month's offers
chosen → the BentoML service started in the background, the seed's three example customers
scored over HTTP → one billing day (`flows.billing`) → one monitoring cycle on a drift scenario
(`flows.monitor`: report, retrain, promote, hot reload of the running service) → the service
stopped → a summary of where to look.

Each step calls a flow or a plain function; this module only sequences them and reports.

    .venv/bin/python -m flows.demo [--customers 20000] [--trials 4] [--scenario price_shock]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


@dataclass
class Demo:
    """What the demo ran and where to look; filled in step by step."""

    root: Path
    log: Path
    url: str = ""
    token: str = ""
    steps: list[tuple[str, float, str]] = field(default_factory=list)
    versions: dict[str, str | None] = field(default_factory=dict)
    served: dict[str, str | None] = field(default_factory=dict)
    scores: list[dict[str, Any]] = field(default_factory=list)
    notices: dict[str, int] = field(default_factory=dict)
    drift: dict[str, Any] = field(default_factory=dict)


def step(demo: Demo, title: str, fn: Callable[[], str]) -> None:
    """Run one step under a spinner and record its time and one-line outcome.

    The libraries' own chatter on stderr (warnings, MLflow and Prefect notes) goes to
    `reports/demo.log`, so the terminal shows the steps and their results.
    """
    start = time.perf_counter()
    with (
        console.status(f"[bold]{title}[/bold]"),
        demo.log.open("a") as log,
        contextlib.redirect_stderr(log),
    ):
        log.write(f"\n== {title}\n")
        outcome = fn()
    seconds = time.perf_counter() - start
    demo.steps.append((title, seconds, outcome))
    console.print(f"[green]✓[/green] {title} [dim]({seconds:.0f}s)[/dim] {outcome}")


def quiet_environment(root: Path, log: Path) -> None:
    """Embedded defaults; library chatter to `log` as the CLI sends it to reports/cli.log."""
    from paycycle.console import route_library_output

    route_library_output(log)
    os.environ.setdefault("PREFECT_HOME", str(root / ".prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # the first start migrates Prefect's SQLite database, slow on a busy 2-core machine
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def run_data(demo: Demo, customers: int) -> str:
    from flows.pipeline import pipeline

    out = pipeline(customers=customers, root=str(demo.root))
    demo.versions["data"] = out["data_hash"]
    return (
        f"{customers:,} customers, {out['feature_rows']:,} feature rows; "
        f"data/raw md5 {out['data_hash'][:12]}"
    )


def run_training(demo: Demo, trials: int) -> str:
    from flows.train import train

    out = train(
        data_hash=demo.versions["data"],
        trials=trials,
        root=str(demo.root),
        recommender=True,
        offers=True,
    )
    m = out["metrics"]
    return (
        f"churn v{out['version']} AUC {m['auc']:.3f} (oracle ratio "
        f"{m.get('oracle_auc_ratio', float('nan')):.3f}), {out['promotion']['action']}; "
        f"recommender v{out['recommender']['version']} {out['recommender']['action']}; "
        f"offers v{out['offers']['version']} {out['offers']['action']}"
    )


def run_store_and_scores(demo: Demo) -> str:
    from inference.batch import score_all
    from inference.monthly_offers import decide_month
    from paycycle import config
    from paycycle.loader import migrate_and_load
    from paycycle.store import safe_url

    settings = config.load(root=demo.root)
    rows = sum(migrate_and_load(settings).values())
    month = decide_month(settings)
    scored = sum(r.rows for r in score_all(settings, month.as_of))
    demo.drift["as_of"] = month.as_of
    return (
        f"{rows:,} rows in {safe_url(settings.db_url)}; {scored:,} customers scored for "
        f"{month.as_of}; {len(month.chosen):,} offers within {month.budget:,.0f} USD"
    )


def score_seed_customers(demo: Demo) -> str:
    import httpx

    from inference.smoke import SEED_CUSTOMERS

    auth = {"Authorization": f"Bearer {demo.token}"}
    customers = [{"customer_id": f"seed-{i}", **c} for i, c in enumerate(SEED_CUSTOMERS, 1)]
    churn = httpx.post(f"{demo.url}/churn", json={"customers": customers}, headers=auth, timeout=30)
    churn.raise_for_status()
    profiles = {"customers": [{**c, "plan_id": 2} for c in customers]}
    recs = httpx.post(f"{demo.url}/recommend", json=profiles, headers=auth, timeout=30)
    offers = httpx.post(f"{demo.url}/offer", json=profiles, headers=auth, timeout=30)
    recs.raise_for_status()
    offers.raise_for_status()
    for c, s, r, o in zip(customers, churn.json(), recs.json(), offers.json(), strict=True):
        top = r["items"][0]["item"] if r["items"] else "—"
        demo.scores.append({**c, **s, "top_item": top, "offer": o["offer"] or "none"})
    version = churn.json()[0]["model_version"]
    return f"3 customers scored by {demo.url} (paycycle-churn v{version})"


def served_versions(demo: Demo) -> None:
    """The versions the service answers with now (after a retrain, the reloaded champion)."""
    import httpx

    ready = httpx.get(f"{demo.url}/readyz", timeout=10).json()
    demo.served = {m["name"]: m["version"] for m in ready["models"]}


def run_billing(demo: Demo) -> str:
    from flows.billing import daily_billing

    out = daily_billing(as_of=demo.drift["as_of"], root=str(demo.root))
    demo.notices = {"due": out["due"], **out["enqueue"]}
    sent = out["delivery"].get("sent", 0)
    return (
        f"{out['due']:,} notices due on {out['as_of']}: {out['enqueue']['inserted']:,} new in the "
        f"outbox, {out['enqueue']['duplicates']:,} already there; {sent:,} sent"
    )


def run_monitoring(demo: Demo, scenario: str) -> str:
    from flows.monitor import monitor_and_retrain

    out = monitor_and_retrain(scenario=scenario, root=str(demo.root))
    demo.drift.update(out)
    reload = out.get("reload") or {}
    return f"{scenario}: drift={out['drift']}, action {out['action']}" + (
        f", service reloaded={reload.get('reloaded')}" if reload else ""
    )


def summary(demo: Demo, started: float) -> None:
    """The final table: timings, the seed customers' answers, and where to look."""
    table = Table(title="seed customers over HTTP")
    for col in ("customer", "tenure", "failed", "usage", "P(churn)", "band", "top item", "offer"):
        table.add_column(col)
    for s in demo.scores:
        table.add_row(
            s["customer_id"],
            f"{s['subscription_duration']:g}",
            f"{s['failed_payments']:g}",
            f"{s['usage_pattern']:g}",
            f"{s['churn_probability']:.3f}",
            s["risk_band"],
            s["top_item"],
            s["offer"],
        )
    console.print(table)
    where = Table(title=f"PayCycle demo finished in {time.perf_counter() - started:.0f}s")
    where.add_column("what")
    where.add_column("where")
    where.add_row(
        "MLflow UI (runs, models, aliases)", "uv run paycycle ui   # http://127.0.0.1:5000"
    )
    where.add_row("drift reports", str(demo.root / "reports" / "index.html"))
    where.add_row("this cycle's drift report", str(demo.drift.get("html", "")))
    where.add_row("data quality (Data Docs)", str(demo.root / "reports/data_docs/index.html"))
    where.add_row("notices delivered", str(demo.root / "data/outbox"))
    where.add_row("served model versions", ", ".join(f"{k} v{v}" for k, v in demo.served.items()))
    where.add_row("data version (DVC md5 of data/raw)", str(demo.versions.get("data")))
    where.add_row("library output of every step", str(demo.log))
    where.add_row("endpoint (stopped now)", f"{demo.url}  `uv run paycycle serve` to start it")
    console.print(where)


def run_demo(customers: int = 20_000, trials: int = 4, scenario: str = "price_shock") -> Demo:
    """Run every step; raises on the first failure (the CLI turns that into one line)."""
    from paycycle import config
    from serving.process import free_port, serve, wait_ready

    settings = config.load()
    demo = Demo(root=settings.root, log=settings.root / "reports" / "demo.log")
    demo.log.parent.mkdir(parents=True, exist_ok=True)
    demo.log.write_text("")
    quiet_environment(demo.root, demo.log)
    started = time.perf_counter()
    step(demo, "data: simulate → DVC → validate → features", lambda: run_data(demo, customers))
    step(demo, "models: tune → train → register → promote", lambda: run_training(demo, trials))
    step(demo, "store, batch scores and the month's offers", lambda: run_store_and_scores(demo))
    port = free_port()
    demo.token = secrets.token_urlsafe(24)
    demo.url = f"http://127.0.0.1:{port}"
    os.environ["PAYCYCLE_API_TOKEN"] = demo.token
    os.environ["PAYCYCLE_SERVICE_URL"] = demo.url  # the monitor reloads this service
    env = {**os.environ, "MLFLOW_TRACKING_URI": settings.tracking_uri}
    log = demo.root / "reports" / "demo-service.log"
    with serve("serving.service:PayCycle", port, env, log) as proc:
        step(demo, "serve: BentoML in the background", lambda: _ready(demo, proc, log, wait_ready))
        step(demo, "score the seed's three customers over HTTP", lambda: score_seed_customers(demo))
        step(demo, "billing: one day of notices, exactly once", lambda: run_billing(demo))
        step(demo, f"monitor: one cycle with {scenario}", lambda: run_monitoring(demo, scenario))
        served_versions(demo)
    console.print("[green]✓[/green] service stopped")
    summary(demo, started)
    return demo


def _ready(demo: Demo, proc: Any, log: Path, wait: Callable[..., None]) -> str:
    wait(demo.url, proc, log)
    return f"{demo.url} ready (log {log.relative_to(demo.root)})"


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the whole PayCycle loop end to end.")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--scenario", default="price_shock")
    args = parser.parse_args()
    try:
        run_demo(args.customers, args.trials, args.scenario)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:  # one readable line; the step above it says where
        console.print(f"[red]demo failed:[/red] {exc.__class__.__name__}: {exc}")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
