"""The monitor flow: no drift ⇒ only a report; drift inside the cooldown ⇒ no retrain.

The full loop (drift ⇒ train challenger ⇒ promote ⇒ service reload) needs a trained champion
and a running service; it is exercised where those fixtures exist.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from monitoring.loop import cooldown_passed, read_state, record_retrain
from paycycle import config

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def test_cooldown(root: Path) -> None:
    settings = config.load(root=root)
    assert cooldown_passed(settings)[0]
    now = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
    record_retrain(settings, {"version": "3"}, now=now)
    days = settings.params.drift.cooldown_days
    assert not cooldown_passed(settings, now + dt.timedelta(days=days - 1))[0]
    assert cooldown_passed(settings, now + dt.timedelta(days=days))[0]
    assert read_state(settings)["retrains"][0]["version"] == "3"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_flow_reports_only(root: Path) -> None:
    from prefect.testing.utilities import prefect_test_harness

    from flows.monitor import monitor_and_retrain

    settings = config.load(root=root)
    record_retrain(settings, {"version": "1"})  # inside the cooldown: drift must not retrain
    with prefect_test_harness():
        quiet = monitor_and_retrain(scenario="baseline", customers=3_000, seed=2024, root=str(root))
        drift = monitor_and_retrain(
            scenario="usage_drop", customers=3_000, seed=2024, root=str(root)
        )
    assert not quiet["drift"] and quiet["action"] == "none"
    assert drift["drift"] and drift["action"].startswith("skipped retrain")
    assert len(read_state(settings)["retrains"]) == 1
    assert Path(quiet["html"]).exists() and Path(drift["index"]).exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_flow_publishes_reviewer_artifacts(root: Path, prefect_harness: Path) -> None:
    import asyncio
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.monitor import monitor_and_retrain
    from tests.monitoring_files import performance

    folder = root / "reports" / "drift" / dt.date.today().isoformat()
    folder.mkdir(parents=True)
    (folder / "performance.json").write_text(json.dumps(performance("2026-05", 0.77, 0.79)))
    out = monitor_and_retrain(
        scenario="baseline", customers=2_000, seed=2024, allow_retrain=False, root=str(root)
    )

    key = "monitoring-baseline"  # the report is baseline-HHMMSS: one key, a version per run

    async def read() -> dict[str, object]:
        async with get_client() as client:
            keys = ArtifactFilterKey(any_=[key, f"{key}-table"])
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=keys))
            return {a.key: a.data for a in found}

    artifacts = asyncio.run(read())
    markdown, table = artifacts[key], artifacts[f"{key}-table"]
    assert f"**{out['verdict']}**" in markdown and "0.790 (0.770–0.810)" in markdown
    rows = json.loads(table) if isinstance(table, str) else table
    assert rows[0]["realized_auc"] == "0.770" and rows[0]["verdict"] == out["verdict"]
