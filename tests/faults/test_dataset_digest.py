"""The digest a churn run gives its training data never names data it was not trained on.

Fault: `dvc.lock` records an md5 for the feature table, then the table is rebuilt (a run with
overrides, a hand edit) without `dvc commit`. The stale record must not become the dataset's
digest; the md5 of the data as it is (DVC's algorithm) does, and the note says the record is stale.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import yaml

from paycycle import config

FEATURES = "data/features/features.parquet"


def _lock(root: Path, md5: str) -> None:
    outs = [{"path": FEATURES, "md5": md5}]
    (root / "dvc.lock").write_text(
        yaml.safe_dump({"schema": "2.0", "stages": {"f": {"outs": outs}}})
    )


def _project(tmp_path: Path, recorded: str | None) -> tuple[config.Settings, Path]:
    path = tmp_path / FEATURES
    path.parent.mkdir(parents=True)
    pd.DataFrame({"customer_id": [1, 2, 3], "failed_payments": [0, 1, 2]}).to_parquet(path)
    if recorded is not None:
        _lock(tmp_path, recorded)
    return config.load(root=tmp_path), path


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_a_current_dvc_record_is_the_digest(tmp_path: Path) -> None:
    from training.tracking import dataset_digest

    settings, path = _project(tmp_path, recorded=None)
    _lock(tmp_path, _md5(path))  # what `dvc commit` records for the table now
    assert dataset_digest(settings, path) == (_md5(path), "DVC md5 (dvc.lock / .dvc record)")


def test_a_stale_dvc_record_is_not_used(tmp_path: Path) -> None:
    from training.tracking import dataset_digest

    stale = "0" * 32
    settings, path = _project(tmp_path, recorded=stale)
    digest, note = dataset_digest(settings, path)
    assert digest == _md5(path) != stale
    assert "stale" in note and stale in note


def test_unrecorded_data_and_a_missing_file(tmp_path: Path) -> None:
    from training.tracking import dataset_digest

    settings, path = _project(tmp_path, recorded=None)
    assert dataset_digest(settings, path) == (_md5(path), "md5 of the data (not recorded by DVC)")
    elsewhere = tmp_path.parent / f"{tmp_path.name}-byo.csv"  # a user's CSV outside the project
    elsewhere.write_text("a,b\n1,2\n")
    assert dataset_digest(settings, elsewhere)[0] == _md5(elsewhere)
    digest, note = dataset_digest(settings, tmp_path / "gone.parquet")
    assert digest is None and "not found" in note
