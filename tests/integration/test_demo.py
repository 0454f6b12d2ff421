"""`make demo`'s whole loop (`python -m flows.demo`) at a smaller size in a throw-away project.

Same code path as the real demo: data flow with DVC and validation, tuning, three models
registered and promoted, store, batch scores, the Bento in the background scoring the seed's
customers over HTTP, a billing day, a drift cycle that retrains and hot-reloads, clean stop.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.project_copy import PROJECT_ROOT, make_project

# small and quick: the floors are the real ones except the recommender's oracle ratio, which
# is noisy with ~200 held-out adopters (as in tests/service/conftest.py)
FAST = {
    "churn": {"epochs": 12, "patience": 3},
    "tuning": {"epochs": 3, "startup_trials": 1, "warmup_epochs": 1},
    "recommend": {"hidden_units": [32], "epochs": 10, "patience": 3, "min_oracle_ratio": 0.5},
}


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(900)
def test_demo_runs_the_whole_loop_and_exits_cleanly(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project", {"customers": 3_000})
    params = yaml.safe_load((root / "params.yaml").read_text())
    for section, values in FAST.items():
        params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {
        **os.environ,
        "PAYCYCLE_ROOT": str(root),
        "PREFECT_HOME": str(root / ".prefect"),
        "COLUMNS": "160",
    }
    for key in ("PAYCYCLE_API_TOKEN", "PAYCYCLE_SERVICE_URL", "MLFLOW_TRACKING_URI"):
        env.pop(key, None)
    out = subprocess.run(
        [sys.executable, "-m", "flows.demo", "--customers", "3000", "--trials", "2"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    shown = out.stdout + out.stderr
    assert out.returncode == 0, shown[-4000:]
    assert "Traceback" not in shown, shown[-4000:]
    for line in (
        "data: simulate → DVC → validate → features",
        "models: tune → train → register → promote",
        "score the seed's three customers over HTTP",
        "billing: one day of notices",
        "monitor: one cycle with price_shock",
        "service stopped",
        "PayCycle demo finished",
    ):
        assert line in shown, f"missing {line!r}:\n{shown[-4000:]}"
    assert "drift=True, action retrained, service reloaded=True" in shown, shown[-3000:]
    assert (root / "reports" / "index.html").exists()
    assert list((root / "data" / "outbox").glob("*.jsonl")), "no notice delivered"
    assert (root / "mlruns.db").exists()
    for seed in ("seed-1", "seed-2", "seed-3"):
        assert seed in out.stdout
