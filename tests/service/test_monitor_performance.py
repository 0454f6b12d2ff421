"""`concept_shift` end to end against the running service: the inputs do not move, so data drift
says no; the champion's realized performance on the closed month says yes ⇒ a challenger is
trained, evaluated and promoted (or refused with its logged reason) ⇒ the service reloads.

Runs on the service fixture's own project (registry, feature table, reports folder), like
`test_monitor_loop.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from inference.registry import CHURN_MODEL


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the session fixtures (~1-9 min on a loaded machine) count too
def test_concept_shift_retrains_on_realized_performance_not_on_data_drift(
    api, monitor_env: str, prefect_harness
) -> None:
    from flows.monitor import monitor_and_retrain
    from inference import registry as models
    from monitoring.loop import STATE_FILE
    from paycycle import config
    from training.registry import history

    root = monitor_env
    settings = api.settings()
    # the cooldown is per project; another test of this session may have just retrained
    reports = config.load(root=root).path(config.load(root=root).params.drift.reports_dir)
    (reports / STATE_FILE).unlink(missing_ok=True)
    before = models.alias_version(settings, CHURN_MODEL, "champion")

    out = monitor_and_retrain(scenario="concept_shift", customers=3_000, seed=2024, root=root)

    assert not out["drift"] and not out["reasons"], out["reasons"]  # inputs unchanged
    perf = out["performance"]
    assert out["realized_drift"] and perf["decision"]["realized_drift"]
    judged = perf["model_versions"][before]
    assert judged["realized"]["brier"] > judged["estimated"]["brier_high"]  # the estimate is blind
    assert any("Brier rose" in r for r in perf["decision"]["reasons"])
    written = Path(perf["path"])
    assert written == Path(out["json"]).with_name(Path(out["json"]).stem + ".performance.json")
    assert json.loads(written.read_text())["window"] == perf["window"]
    assert perf["window"] in Path(out["index"]).read_text()
    run = models.client(settings).get_model_version(CHURN_MODEL, before).run_id
    logged = models.client(settings).get_run(run).data.metrics
    assert f"perf_v{before}_realized_brier" in logged and logged["perf_realized_drift"] == 1.0

    assert out["action"] == "retrained", out["action"]
    trained, decision = out["retrain"]["version"], out["retrain"]["promotion"]
    assert trained and decision["reason"]
    last = history(CHURN_MODEL, settings)[-1]
    assert last.version == trained and last.reason == decision["reason"]  # logged either way
    assert out["reload"]["reloaded"] and out["reload"]["body"]["state"] == "done"
    champion = models.alias_version(settings, CHURN_MODEL, "champion")
    ready = httpx.get(f"{api.url}/readyz", timeout=10).json()
    assert next(m["version"] for m in ready["models"] if m["name"] == CHURN_MODEL) == champion
    assert champion == (trained if decision["action"] == "promoted" else before)
