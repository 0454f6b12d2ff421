"""What a churn training run records in MLflow 3, and the baseline rule in promotion.

Against a real (temporary SQLite) MLflow store: the LoggedModel carries the holdout metrics
(the model is logged before them), the training data is a dataset input whose digest is the
md5 DVC recorded, a logistic-regression baseline sits beside the Keras model with
`baseline_auc` / `auc_minus_baseline`, and `promotion.require_beat_baseline` refuses a candidate
that loses to it (when false, the decision says so and promotes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from paycycle import config
from paycycle.config import ChurnParams

pytestmark = pytest.mark.slow
NAME = "paycycle-churn"
FEATURES = "data/features/features.parquet"
FAST = ChurnParams(hidden_units=(32, 16), epochs=8, patience=3, seed=3)
WEAK = FAST.model_copy(update={"epochs": 3, "hidden_units": (8,)})
POLICY = {"metric": "auc", "margin": 0.005, "min_auc": 0.55, "max_brier": 0.08, "max_ece": 0.05}


def _settings(root: Path, **promotion: object) -> config.Settings:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["promotion"] = {**POLICY, **promotion}
    path = root / f"params-{'-'.join(promotion) or 'default'}.yaml"
    path.write_text(yaml.safe_dump(params))
    return config.load(path, root=root, mlflow_tracking_uri=f"sqlite:///{root}/mlruns.db")


@pytest.fixture(scope="module")
def root(small_sim: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from features.table import snapshot_dates, write_feature_table

    root = tmp_path_factory.mktemp("conventions")
    shutil.copy(Path(__file__).resolve().parents[2] / "params.yaml", root / "params.yaml")
    shutil.copytree(small_sim / "truth", root / "data" / "truth")
    write_feature_table(
        small_sim / "raw", root / FEATURES, snapshot_dates(dt.date(2025, 1, 1), 12, 6)
    )
    # what `dvc commit` would record for the table (DVC 3: the file's md5)
    md5 = hashlib.md5((root / FEATURES).read_bytes()).hexdigest()
    lock = {"schema": "2.0", "stages": {"features": {"outs": [{"path": FEATURES, "md5": md5}]}}}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    return root


def test_run_logs_model_metrics_dataset_and_baseline(root: Path) -> None:
    import mlflow

    from inference.registry import client
    from paycycle.versioning import data_hash
    from training.churn.pipeline import train_from_table

    settings = _settings(root)
    result = train_from_table(settings, params=FAST)
    run = client(settings).get_run(result.run_id)
    recorded = data_hash(FEATURES, root)

    # the training data: one dataset input, context `training`, digest = the DVC md5
    inputs = run.inputs.dataset_inputs
    assert len(inputs) == 1
    dataset = inputs[0].dataset
    assert dataset.digest == recorded and dataset.name == "features.parquet"
    assert run.data.tags["dataset_digest"].startswith("DVC md5")
    assert FEATURES in dataset.source
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"

    # the Keras model's LoggedModel shows its holdout metrics; the baseline has its own
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{result.run_id}'",
        output_format="list",
    )
    by_name = {m.name: m for m in models}
    assert set(by_name) == {"model", "baseline"}
    model_metrics = {m.key: m.value for m in by_name["model"].metrics}
    assert model_metrics["auc"] == pytest.approx(result.metrics["auc"])
    assert {"brier", "ece", "baseline_auc", "auc_minus_baseline"} <= set(model_metrics)
    baseline_metrics = {m.key: m.value for m in by_name["baseline"].metrics}
    assert baseline_metrics["baseline_auc"] == pytest.approx(result.metrics["baseline_auc"])

    # baseline figures in the run, and a sentence saying how the Keras model compares
    m = run.data.metrics
    assert 0.5 < m["baseline_auc"] <= 1
    assert m["auc_minus_baseline"] == pytest.approx(m["auc"] - m["baseline_auc"])
    verdict = run.data.tags["baseline"]
    assert "logistic-regression baseline" in verdict and f"{m['baseline_auc']:.4f}" in verdict
    assert verdict in run.data.tags["mlflow.note.content"]
    print(f"keras auc {m['auc']:.4f} baseline {m['baseline_auc']:.4f}: {verdict}")


def test_require_beat_baseline_refuses_a_candidate_that_loses_to_it(root: Path) -> None:
    from inference import registry as models
    from inference.churn import default_spec
    from training import registry
    from training.churn.pipeline import load_feature_table, promote_churn, split, train_and_log

    settings = _settings(root)
    train, holdout = split(settings, load_feature_table(settings))
    base = default_spec()
    one = type(base)(("failed_payments",), (), {}, ("failed_payments",), base.defaults)
    weak = train_and_log(settings, train, holdout, WEAK, spec=one, run_name="weak")
    assert weak.metrics["auc_minus_baseline"] < 0  # one feature loses to all features

    strict = _settings(root, require_beat_baseline=True)
    d = promote_churn(strict)
    assert d.action == "refused" and d.version == weak.version
    assert "does not beat the baseline" in d.reason and "require_beat_baseline" in d.reason
    assert d.baseline_metrics["auc"] > d.metrics["auc"]
    assert models.alias_version(settings, NAME, models.CHAMPION) is None

    # default (false): promoted, and the decision records that it does not beat the baseline
    d = promote_churn(settings)
    assert d.action == "promoted" and "does not beat the baseline by" in d.reason, d.reason
    assert models.alias_version(settings, NAME, models.CHAMPION) == weak.version

    last_two = registry.history(NAME, settings)[-2:]
    assert [e.action for e in last_two] == ["refused", "promoted"]
    assert all(e.baseline_metrics["auc"] > e.metrics["auc"] for e in last_two)
