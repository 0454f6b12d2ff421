"""Plain functions behind the monitor → retrain loop (`flows/monitor.py` wires them).

* `build_windows` (`simulated_windows` / `production_windows`): the (reference, current) pair
  to compare, for `paycycle monitor` and the flow alike;
* `run_performance`: realized and estimated performance of the last month whose outcomes are
  known (`monitoring.performance`), written beside the drift report as `<name>.performance.json`
  and logged to the champion's run; its `decision.realized_drift` retrains like data drift;
* `cooldown_passed` / `record_retrain`: the guard between drift-triggered retrains, kept in
  `<reports_dir>/monitor_state.json` next to the reports it explains;
* `reload_service`: `POST <service_url>/admin/reload` with the bearer token.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring.windows import Window
from paycycle.config import Settings
from paycycle.errors import DataError, RegistryUnavailable

log = logging.getLogger("paycycle.monitoring")

STATE_FILE = "monitor_state.json"


def _sim_spec(scenario: str, customers: int, months: int, seed: int, start_date: dt.date):
    """The simulation behind `--scenario` monitoring (shift in the last month)."""
    from paycycle.sim.simulator import SimSpec

    return SimSpec(
        customers=customers, months=months, seed=seed, scenario=scenario, start_date=start_date
    )


def simulated_windows(
    scenario: str, customers: int, months: int, seed: int, start_date: dt.date
) -> tuple[Window, Window]:
    """Fresh in-memory simulation of `scenario` (shift in the last month); see `windows`."""
    from monitoring.windows import scenario_windows

    return scenario_windows(_sim_spec(scenario, customers, months, seed, start_date))


def build_windows(
    settings: Settings,
    scenario: str | None,
    customers: int,
    months: int,
    seed: int | None = None,
) -> tuple[Window, Window]:
    """The (reference, current) pair of one monitoring cycle, for the CLI and the flow alike.

    Args:
        settings: project settings (feature table, request log, raw data, `data` params).
        scenario: simulate fresh data for this scenario (`simulated_windows`); None compares
            production data (`production_windows`).
        customers, months: simulated sizes (with `scenario`).
        seed: simulation seed (default `data.seed`).

    Raises:
        DataError: production data is missing, or the scenario cannot be windowed.
    """
    if scenario is None:
        return production_windows(settings)
    d = settings.params.data
    return simulated_windows(
        scenario, customers, months, d.seed if seed is None else seed, d.start_date
    )


def report_name(scenario: str | None, now: dt.datetime | None = None) -> str:
    """The report's name: the scenario (or `daily`) and the UTC time, e.g. `daily-061502`."""
    return f"{scenario or 'daily'}-{now or dt.datetime.now(dt.UTC):%H%M%S}"


def production_windows(settings: Settings, min_request_rows: int = 1_000) -> tuple[Window, Window]:
    """Reference = the feature table's latest snapshot (what the champion was trained and
    validated on); current = logged requests since that snapshot when there are enough of
    them, else features at the first day after the newest complete month of `data/raw`.

    Raises:
        DataError: the feature table or the raw data is missing.
    """
    from features.build import build_features, load_events
    from features.schema import COLUMNS
    from monitoring.requests import ROLE_COLUMN, SHADOW, read_requests

    table_path = settings.path(settings.params.features.path)
    if not table_path.exists():
        raise DataError(f"{table_path}: no feature table (run `paycycle features` first)")
    table = pd.read_parquet(table_path)
    ref_date = pd.Timestamp(table["as_of"].max())
    ref = table.loc[table["as_of"] == ref_date]
    labels = ref.get("churned")
    reference = Window(ref.reset_index(drop=True), ref_date, labels)
    logged = read_requests(settings.path(settings.params.drift.requests_dir), since=ref_date)
    if ROLE_COLUMN in logged.columns:  # a rollout's shadow scores are no traffic of their own
        logged = logged.loc[logged[ROLE_COLUMN] != SHADOW]
    if len(logged) >= min_request_rows and set(COLUMNS) <= set(logged.columns):
        return reference, Window(logged.reset_index(drop=True), pd.Timestamp.now(tz="UTC"))
    events = load_events(settings.raw_dir)
    as_of = pd.Timestamp(events["usage"]["month"].max()) + pd.offsets.MonthBegin(1)
    return reference, Window(build_features(events, as_of), as_of)


def champion_predictions(
    settings: Settings, reference: Window, current: Window
) -> tuple[np.ndarray, np.ndarray] | None:
    """The churn champion's scores of both windows, for the report's prediction drift; a
    window read from the request log keeps the scores it was answered with. None without a
    champion (the report then shows the features only)."""
    from inference import registry
    from monitoring.requests import PREDICTION_COLUMN
    from paycycle.errors import ConfigError

    try:
        scorer, _ = registry.load_scorer(registry.CHURN_MODEL, settings=settings)
    except (ConfigError, RegistryUnavailable) as exc:
        log.info("no prediction drift in the report: %s", exc)
        return None

    def scores(window: Window) -> np.ndarray:
        if PREDICTION_COLUMN in window.frame:
            return window.frame[PREDICTION_COLUMN].to_numpy(float)
        return np.asarray(scorer(window.frame), dtype=float).ravel()

    return scores(reference), scores(current)


def run_report(settings: Settings, reference: Window, current: Window, name: str) -> dict[str, Any]:
    """`drift_report` with the project's thresholds; importance from the reference's labels;
    the champion's prediction drift, and its quality where the windows carry labels.

    Returns:
        JSON-ready summary: `drift`, `verdict`, `reasons`, `html`, `json`, `index`.
    """
    from mlflow.exceptions import MlflowException

    from monitoring.decision import Thresholds, univariate_importance
    from monitoring.drift import drift_report

    p = settings.params.drift
    importance = (
        univariate_importance(reference.frame, reference.labels)
        if reference.labels is not None
        else None
    )
    labels = None
    if reference.labels is not None and current.labels is not None:
        labels = (reference.labels.to_numpy(), current.labels.to_numpy())
    result = drift_report(
        reference.frame,
        current.frame,
        champion_predictions(settings, reference, current),
        labels,
        out_dir=settings.path(p.reports_dir),
        name=name,
        thresholds=Thresholds.from_params(p),
        importance=importance,
        sample_rows=p.report_sample_rows,
        extra={"reference_as_of": str(reference.as_of), "current_as_of": str(current.as_of)},
    )
    try:
        champion_run = log_to_champion(settings, [result.html_path, result.json_path], name)
    except (MlflowException, OSError, RegistryUnavailable) as exc:  # the report still stands
        log.warning("drift report not attached to the champion's run: %s", exc)
        champion_run = None
    return {
        "drift": result.drift,
        "verdict": result.verdict,
        "reasons": result.decision.reasons,
        "share": result.decision.share,
        "html": str(result.html_path),
        "json": str(result.json_path),
        "index": str(result.index_path),
        "champion_run": champion_run,
    }


def log_to_champion(
    settings: Settings,
    paths: list[Path],
    name: str,
    metrics: dict[str, float] | None = None,
    step: int = 0,
) -> str | None:
    """Attach a report to the churn champion's training run (artifacts `drift/<name>/`, and
    `metrics` at `step`), so the MLflow UI shows a model's monitoring history next to its
    training metrics. Returns the run id, or None when there is no champion yet (the report
    stands alone under reports/)."""
    from inference import registry

    version = registry.alias_version(settings, registry.CHURN_MODEL, registry.CHAMPION)
    if version is None:
        return None
    client = registry.client(settings)
    run_id = client.get_model_version(registry.CHURN_MODEL, version).run_id
    if not run_id:
        return None
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path=f"drift/{name}")
    for key, value in (metrics or {}).items():
        client.log_metric(run_id, key, value, step=step)
    return run_id


def performance_windows(
    settings: Settings, scenario: str | None, customers: int, months: int, seed: int | None
) -> tuple[pd.DataFrame | None, pd.DataFrame, pd.Timestamp] | None:
    """(prior window, window, as_of) of the champion's last closed month, or None when there
    is nothing to judge yet (no champion, no scores).

    Simulated (`scenario`): the champion scores a fresh simulation before and in the shift
    month. Production: the two newest `scores` dates whose 30-day outcomes are complete, plus
    the request log (`monitoring.outcomes.store_window`).
    """
    from sqlalchemy import select

    from features.build import HORIZON_DAYS
    from inference import registry
    from monitoring import outcomes
    from paycycle.errors import ConfigError
    from paycycle.store import Score, make_engine

    if scenario is not None:
        try:
            scorer, version = registry.load_scorer(registry.CHURN_MODEL, settings=settings)
        except (ConfigError, RegistryUnavailable) as exc:  # no champion: nothing to judge
            log.warning("no realized performance: %s", exc)
            return None
        d = settings.params.data
        spec = _sim_spec(
            scenario, customers, months, d.seed if seed is None else seed, d.start_date
        )
        return outcomes.simulated_windows(spec, scorer, version)
    engine = make_engine(settings.db_url)
    try:
        closed = dt.date.today() - dt.timedelta(days=HORIZON_DAYS)
        with engine.connect() as conn:
            dates = conn.execute(
                select(Score.as_of).where(Score.as_of <= closed).distinct().order_by(Score.as_of)
            ).scalars()
            dates = list(dates)[-2:]
        if not dates:
            return None
        requests = settings.path(settings.params.drift.requests_dir)
        windows = [outcomes.store_window(engine, d, requests) for d in dates]
    finally:
        engine.dispose()
    return (windows[0] if len(windows) == 2 else None), windows[-1], pd.Timestamp(dates[-1])


def run_performance(
    settings: Settings,
    windows: tuple[pd.DataFrame | None, pd.DataFrame, pd.Timestamp] | None,
    report_json: Path,
    name: str,
) -> dict[str, Any] | None:
    """Judge one closed month (`performance_windows`): write `<name>.performance.json` beside
    the drift report, log `perf_*` metrics (step = YYYYMM) to the champion's run, rebuild the
    index. Returns the summary, or None without windows."""
    from mlflow.exceptions import MlflowException

    from monitoring.decision import Thresholds
    from monitoring.drift import write_index
    from monitoring.performance import flat_metrics, summarise, write_performance

    if windows is None:
        return None
    prior, current, as_of = windows
    summary = summarise(current, as_of, Thresholds.from_params(settings.params.drift), prior)
    path = write_performance(summary, report_json)
    write_index(settings.path(settings.params.drift.reports_dir))
    try:
        step = int(f"{as_of:%Y%m}")
        log_to_champion(settings, [path], name, flat_metrics(summary), step)
    except (MlflowException, OSError, RegistryUnavailable) as exc:
        log.warning("performance not logged to the champion's run: %s", exc)
    return {**summary, "path": str(path)}


def _state_path(settings: Settings) -> Path:
    return settings.path(settings.params.drift.reports_dir) / STATE_FILE


def read_state(settings: Settings) -> dict[str, Any]:
    path = _state_path(settings)
    return json.loads(path.read_text()) if path.exists() else {}


def cooldown_passed(settings: Settings, now: dt.datetime | None = None) -> tuple[bool, str]:
    """Whether `drift.cooldown_days` have passed since the last drift-triggered retrain."""
    now = now or dt.datetime.now(dt.UTC)
    last = read_state(settings).get("last_retrain")
    if not last:
        return True, "no previous retrain"
    since = now - dt.datetime.fromisoformat(last)
    days = settings.params.drift.cooldown_days
    if since >= dt.timedelta(days=days):
        return True, f"last retrain {since.days} day(s) ago >= cooldown {days}"
    return False, f"last retrain {since.days} day(s) ago < cooldown {days} day(s)"


def record_retrain(
    settings: Settings, outcome: dict[str, Any], now: dt.datetime | None = None
) -> None:
    """Remember the retrain (time and outcome) for the cooldown and for the reader."""
    now = now or dt.datetime.now(dt.UTC)
    state = read_state(settings)
    state["last_retrain"] = now.isoformat(timespec="seconds")
    state.setdefault("retrains", []).append({"at": state["last_retrain"], **outcome})
    path = _state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2, default=str) + "\n")


def reload_service(settings: Settings, poll_s: float = 0.5) -> dict[str, Any]:
    """Ask the running service to load the new champion and wait for the outcome (skipped
    without `service_url`).

    The service answers `POST /admin/reload` with 202 at once and loads in the background;
    `GET /admin/reload` is polled until the load is done or failed, for at most the service's
    own deadline (`serving.reload_timeout_s`) plus `drift.reload_timeout_s`.

    Returns:
        `reloaded` (the new set is served), the POST's `status` and the final status `body`.
    """
    import time

    import httpx

    if not settings.service_url:
        return {"reloaded": False, "reason": "no service URL configured (PAYCYCLE_SERVICE_URL)"}
    headers = {"Authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}
    url = settings.service_url.rstrip("/") + "/admin/reload"
    timeout = settings.params.drift.reload_timeout_s
    response = httpx.post(url, headers=headers, json={}, timeout=timeout)
    if response.status_code != 409:  # 409: a late load still runs; reported, not raised
        response.raise_for_status()
    body = response.json()
    deadline = time.monotonic() + settings.params.serving.reload_timeout_s + timeout
    while response.status_code == 202 and body["state"] == "loading":
        if time.monotonic() > deadline:
            break
        time.sleep(poll_s)
        polled = httpx.get(url, headers=headers, timeout=timeout)
        polled.raise_for_status()
        body = polled.json()
    return {"reloaded": body["state"] == "done", "status": response.status_code, "body": body}
