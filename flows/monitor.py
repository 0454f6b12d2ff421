"""Daily monitoring as a Prefect 3 flow: current window → report → decision → retrain → reload.

Each task wraps one function of `monitoring/` (or the training flow); the flow only wires them.
A second check judges the champion's last closed month on its realized outcomes
(`monitoring.loop.run_performance`: realized vs estimated performance, `<name>.performance.json`
beside the report). A run with neither data drift nor a realized-performance drop writes the
reports and stops. With either, and when `drift.cooldown_days`
have passed since the last drift-triggered retrain, it runs the training flow (`flows.train`:
tune → train → evaluate → register challenger → promote by rule, the decision logged either
way), records the retrain, and tells the service to reload its champion.

Run: `python -m flows.monitor [--scenario usage_drop]`, `paycycle monitor`, or the
`daily-monitoring` deployment.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from paycycle import config
from paycycle.config import Settings


@task(cache_policy=NO_CACHE, log_prints=True)
def build_windows(
    settings: Settings, scenario: str | None, customers: int, months: int, seed: int | None
):
    """(reference, current) windows: simulated for `scenario`, else production data/requests."""
    from monitoring import loop

    ref, cur = loop.build_windows(settings, scenario, customers, months, seed)
    print(
        f"reference {ref.as_of.date()} ({len(ref.frame)} rows) vs current ({len(cur.frame)} rows)"
    )
    return ref, cur


@task(cache_policy=NO_CACHE, log_prints=True)
def report(settings: Settings, reference, current, name: str) -> dict[str, Any]:
    """Decision + Evidently HTML + JSON summary + index."""
    from monitoring.loop import run_report

    out = run_report(settings, reference, current, name)
    print(f"{out['verdict']}: {'; '.join(out['reasons']) or 'nothing moved'}")
    print(f"report: {out['html']}")
    return out


@task(cache_policy=NO_CACHE)
def publish_monitoring(out: dict[str, Any]) -> dict[str, str]:
    """The run's reviewer artifacts: verdict, reasons, and the window's performance file (the
    performance step writes it beside the report first)."""
    from pathlib import Path

    from flows.artifacts import publish
    from monitoring.artifacts import monitoring_artifact
    from monitoring.index_page import window_performance

    return publish(monitoring_artifact(out, window_performance(Path(out["json"]))))


def retrain_and_promote(settings: Settings, tune: bool) -> dict[str, Any]:
    """Seam to the training side: the `train` flow (train → evaluate → promote by rule)."""
    from flows.train import train

    return train(tune=tune, root=str(settings.root))


@task(cache_policy=NO_CACHE, log_prints=True)
def performance(
    settings: Settings,
    scenario: str | None,
    customers: int,
    months: int,
    seed: int | None,
    report_json: str,
    name: str,
) -> dict[str, Any] | None:
    """Realized + estimated performance of the last closed month, and its verdict."""
    from pathlib import Path

    from monitoring import loop

    windows = loop.performance_windows(settings, scenario, customers, months, seed)
    out = loop.run_performance(settings, windows, Path(report_json), name)
    print(out["decision"] if out else "no closed month to judge yet")
    return out


@task(cache_policy=NO_CACHE, log_prints=True)
def retrain(settings: Settings, tune: bool) -> dict[str, Any]:
    """Run the training flow as a subflow and remember it for the cooldown."""
    from monitoring.loop import record_retrain

    outcome = retrain_and_promote(settings, tune)
    promotion = outcome.get("promotion", {})
    print(f"retrained version {outcome.get('version')}: promotion {promotion}")
    record_retrain(settings, {"version": outcome.get("version"), "promotion": promotion})
    return outcome


@task(retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, log_prints=True)
def reload(settings: Settings) -> dict[str, Any]:
    """`POST /admin/reload` on the running service (skipped when no URL is configured)."""
    from monitoring.loop import reload_service

    result = reload_service(settings)
    print(result)
    return result


@flow(name="monitor-and-retrain", log_prints=True)
def monitor_and_retrain(
    scenario: str | None = None,
    customers: int = 5_000,
    months: int = 6,
    seed: int | None = None,
    allow_retrain: bool = True,
    tune: bool = False,
    root: str | None = None,
) -> dict[str, Any]:
    """One monitoring cycle.

    Args:
        scenario: simulate fresh data for this scenario (shift in the last month); None reads
            production data (feature table vs request log / newest raw month).
        customers: simulated customers (with `scenario`).
        months: simulated months (with `scenario`).
        seed: simulation seed (default `data.seed`).
        allow_retrain: False only reports (the CLI's `--no-retrain`).
        tune: run Optuna before retraining (slower); False trains with `params.yaml` `churn:`.
        root: project directory (default: this project or `$PAYCYCLE_ROOT`).

    Returns:
        The report summary, `performance` (None without a closed month) and `realized_drift`,
        plus `retrain`/`reload` outcomes or the reason they were skipped.
    """
    from monitoring.loop import cooldown_passed, report_name

    settings = config.load(root=root) if root else config.load()
    ref, cur = build_windows(settings, scenario, customers, months, seed)
    name = report_name(scenario)
    out = report(settings, ref, cur, name)
    perf = performance(settings, scenario, customers, months, seed, out["json"], name)
    realized = bool(perf and perf["decision"]["realized_drift"])
    out = {**out, "performance": perf, "realized_drift": realized}
    out["artifacts"] = publish_monitoring(out)
    if not (out["drift"] or realized):
        return {**out, "action": "none"}
    if not allow_retrain:
        return {**out, "action": "report only (retraining disabled)"}
    ok, why = cooldown_passed(settings)
    if not ok:
        print(f"drift or performance drop, but no retrain: {why}")
        return {**out, "action": f"skipped retrain: {why}"}
    trained = retrain(settings, tune)
    return {**out, "action": "retrained", "retrain": trained, "reload": reload(settings)}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario")
    parser.add_argument("--no-retrain", action="store_true")
    args = parser.parse_args()
    print(monitor_and_retrain(scenario=args.scenario, allow_retrain=not args.no_retrain))
