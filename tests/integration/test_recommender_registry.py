"""The recommender goes through the shared tracking/registry code: logged, registered, promoted,
loaded back by alias as the compiled scorer the service and CLI use."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from paycycle import config


@pytest.mark.slow
def test_train_register_promote_and_load_by_alias(project: config.Settings) -> None:
    from inference.registry import RECOMMENDER_MODEL, load_scorer
    from training.recommender import data as rd
    from training.recommender.pipeline import build_table, promote_recommender, train_and_log
    from training.registry import history

    raw = yaml.safe_load(project.params_path.read_text())
    raw["recommend"] |= {"hidden_units": [32], "epochs": 8, "patience": 3,
                         "min_oracle_ratio": 0.7}  # fmt: skip  # 3k customers: a noisy ratio
    project.params_path.write_text(yaml.safe_dump(raw))
    settings = config.load(root=project.root)
    table = build_table(settings)
    result = train_and_log(settings, table)
    assert result.version == "1" and result.run_id
    assert result.metrics["recall_at_3_oracle_ratio"] > 0.7
    decision = promote_recommender(settings, table)
    assert decision.promoted, decision.reason
    assert [d.action for d in history(RECOMMENDER_MODEL, settings)] == ["promoted"]
    scorer, version = load_scorer(RECOMMENDER_MODEL, "champion", settings)
    _, holdout = rd.split_rec(table, settings.params.recommend.window_days)
    assert version == "1"
    np.testing.assert_allclose(scorer(holdout.head(50)), result_scores(result, holdout.head(50)))


def result_scores(result, frame):
    """Scores of the in-memory model through a fresh export (same weights as the registered)."""
    import tempfile
    from pathlib import Path

    from inference.recommender import load_recommender
    from training.recommender.model import export_recommender

    with tempfile.TemporaryDirectory() as tmp:
        return load_recommender(export_recommender(result.trained, Path(tmp) / "m"))(frame)
