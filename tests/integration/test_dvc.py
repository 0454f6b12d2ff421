"""`dvc repro` of simulate → validate → features in a temp copy of the project, and a
push/pull round-trip through `paycycle.versioning` (never the real project's cache or remote)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from paycycle import config, versioning
from tests.project_copy import make_project

pytestmark = pytest.mark.slow

STAGES = ("simulate", "validate", "features")


def _repro(root: Path) -> set[str]:
    """Run `dvc repro features`; return the stages that actually ran."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PAYCYCLE_ROOT": str(root),
        "GX_ANALYTICS_ENABLED": "False",
    }
    env.pop("PAYCYCLE_PARAMS_PATH", None)
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "features"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return set(re.findall(r"Running stage '(\w+)'", proc.stdout))


def _set_param(root: Path, section: str, key: str, value: object) -> None:
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params[section][key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_project(tmp_path_factory.mktemp("dvcproj"), {"customers": 400, "seed": 3})


def test_repro_builds_then_does_nothing_then_reruns_only_affected(repo: Path) -> None:
    assert _repro(repo) == set(STAGES)
    assert (repo / "data/features/features.parquet").is_file()
    assert (repo / "reports/data_docs/index.html").is_file()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert set(lock) == set(STAGES)
    assert lock["simulate"]["params"]["params.yaml"]["data.customers"] == 400
    first = versioning.data_hash("data/raw", repo)
    assert first.endswith(".dir")
    assert versioning.content_hash("data/raw", repo) == first  # same hash as DVC records

    assert _repro(repo) == set()  # nothing changed, nothing runs

    _set_param(repo, "features", "snapshots", 2)  # only the features stage reads it
    assert _repro(repo) == {"features"}
    assert versioning.data_hash("data/raw", repo) == first

    _set_param(repo, "data", "seed", 4)  # new data: everything downstream of simulate
    assert _repro(repo) == set(STAGES)
    assert versioning.data_hash("data/raw", repo) != first
    assert _repro(repo) == set()


def test_push_pull_round_trip(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (repo / "dvc.lock").exists():
        _repro(repo)
    before = versioning.data_hash("data/raw", repo)

    settings = config.load(root=repo)  # default remote: <copy>/.dvc-remote
    versioning.push(settings)
    assert any((repo / ".dvc-remote").rglob("*"))

    remote = tmp_path / "elsewhere"
    monkeypatch.setenv("PAYCYCLE_DVC_REMOTE", str(remote))
    env_settings = config.load(root=repo)
    assert env_settings.dvc_remote == str(remote)
    versioning.push(env_settings)
    assert any(remote.rglob("*"))
    assert str(remote) in (repo / ".dvc/config.local").read_text()
    assert "elsewhere" not in (repo / ".dvc/config").read_text()  # committed config untouched

    for gone in ("data/raw", "data/truth", "data/features", ".dvc/cache"):
        shutil.rmtree(repo / gone)
    versioning.pull(env_settings)
    assert (repo / "data/features/features.parquet").is_file()
    assert versioning.content_hash("data/raw", repo) == before
