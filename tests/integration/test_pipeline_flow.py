"""The Prefect data flow on a temp copy of the project (its own git + DVC repo).

One run records simulate/validate/features in dvc.lock (so `dvc status` is clean), a re-run on
the same data takes validation and features from the cache, a run with overrides is hashed but
not recorded, and `python -m flows.pipeline` on the ephemeral server exits cleanly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paycycle import versioning
from tests.conftest import env_without_prefect, run_python
from tests.project_copy import make_project

pytestmark = pytest.mark.slow


def _validation_runs(root: Path) -> dict[str, int]:
    """How many times GE validated a few suites (results it stored under reports/gx)."""
    store = root / "reports/gx/gx/uncommitted/validations"
    return {
        s: len(list((store / s).rglob("*.json"))) for s in ("customers", "payments", "features")
    }


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("flowproj"), {"customers": 2_000, "seed": 5})


def test_flow_records_versions_caches_and_skips_overrides(repo: Path, prefect_harness) -> None:
    from flows.pipeline import pipeline

    result = pipeline(root=str(repo))

    assert result["recorded"] is True
    assert result["data_hash"] == versioning.data_hash("data/raw", repo)
    assert result["features_hash"] == versioning.data_hash("data/features/features.parquet", repo)
    assert result["rows"]["customers"] == 2_000
    features = Path(result["features_path"])
    assert features.is_file() and result["feature_rows"] > 2_000
    assert Path(result["data_docs"]).is_file()
    status = versioning.run_dvc(["status", "--json", "features"], repo)
    assert json.loads(status.stdout or "{}") == {}  # a `dvc repro` would have nothing to do

    runs = _validation_runs(repo)
    assert set(runs) == {"customers", "payments", "features"} and set(runs.values()) == {1}
    again = pipeline(root=str(repo))
    assert again["data_hash"] == result["data_hash"]  # same seed, same bytes
    # validation and features came from Prefect's cache, keyed by the data hash: GE ran no more
    assert _validation_runs(repo) == runs

    lock = (repo / "dvc.lock").read_bytes()
    other = pipeline(customers=500, root=str(repo))
    assert other["recorded"] is False and other["features_hash"] is None
    assert other["data_hash"] != result["data_hash"]
    assert other["data_hash"] == versioning.content_hash("data/raw", repo)
    assert (repo / "dvc.lock").read_bytes() == lock  # dvc.lock still matches params.yaml


def test_module_entry_point_runs_on_ephemeral_server_and_exits_cleanly(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"customers": 1_000, "seed": 2})
    env = env_without_prefect(PAYCYCLE_ROOT=str(root), GX_ANALYTICS_ENABLED="False")
    proc = run_python(["-m", "flows.pipeline", "--customers", "800"], root, env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for text in ("raw data:", "features:", "data docs:", "data hash:", "not updated"):
        assert text in proc.stdout
    for bad in ("Traceback", "CancelledError", "ERROR"):
        assert bad not in proc.stderr, proc.stderr[-3000:]
    assert (root / ".prefect").is_dir()  # PREFECT_HOME inside the project
    assert (root / "data/features/features.parquet").is_file()
