"""The whole drift loop against the running service: a `usage_drop` window ⇒ drift ⇒ a challenger
trained, evaluated and promoted (or refused with its reason) ⇒ the service answers with the new
champion; a baseline window ⇒ a report and nothing else.

Runs on the service fixture's own project (its registry, feature table and reports folder).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from inference.registry import CHURN_MODEL


def _served_churn_version(api) -> str:
    ready = httpx.get(f"{api.url}/readyz", timeout=10).json()
    return next(m["version"] for m in ready["models"] if m["name"] == CHURN_MODEL)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_usage_drop_retrains_and_the_service_follows_baseline_does_nothing(
    api, monitor_env: str, prefect_harness
) -> None:
    from flows.monitor import monitor_and_retrain
    from inference import registry as models
    from training.registry import history

    root = monitor_env
    settings = api.settings()
    before = _served_churn_version(api)
    versions_before = len(models.client(settings).search_model_versions(f"name='{CHURN_MODEL}'"))

    quiet = monitor_and_retrain(scenario="baseline", customers=3_000, seed=2024, root=root)
    assert not quiet["drift"] and quiet["action"] == "none", quiet
    champion_run = models.client(settings).get_model_version(CHURN_MODEL, before).run_id
    assert quiet["champion_run"] == champion_run  # the report is on the champion's run too
    summary = json.loads(Path(quiet["json"]).read_text())  # the champion's scores are in it
    assert summary["prediction"] and summary["prediction"]["psi"] < 0.1, summary["prediction"]
    logged = models.client(settings).list_artifacts(champion_run, "drift")
    assert any(Path(quiet["html"]).stem in a.path for a in logged), logged
    after_quiet = models.client(settings).search_model_versions(f"name='{CHURN_MODEL}'")
    assert len(after_quiet) == versions_before  # nothing trained
    assert _served_churn_version(api) == before

    drift = monitor_and_retrain(scenario="usage_drop", customers=3_000, seed=2024, root=root)
    assert drift["drift"] and drift["action"] == "retrained", drift
    trained = drift["retrain"]["version"]
    decision = drift["retrain"]["promotion"]
    assert trained and decision["reason"]
    last = history(CHURN_MODEL, settings)[-1]
    assert last.version == trained and last.reason == decision["reason"]  # logged either way
    assert drift["reload"]["reloaded"] and drift["reload"]["status"] == 202
    assert drift["reload"]["body"]["state"] == "done"
    champion = models.alias_version(settings, CHURN_MODEL, "champion")
    assert _served_churn_version(api) == champion
    if decision["action"] == "promoted":
        assert champion == trained != before
    else:
        assert champion == before
