"""Champion/challenger promotion against a real (temporary SQLite) MLflow registry."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from paycycle import config
from paycycle.config import ChurnParams

pytestmark = pytest.mark.slow
NAME = "paycycle-churn"
FAST = ChurnParams(hidden_units=(32, 16), epochs=8, patience=3, seed=3)
WEAK = FAST.model_copy(update={"epochs": 3, "hidden_units": (8,)})
POLICY = {"metric": "auc", "margin": 0.005, "min_auc": 0.55, "max_brier": 0.08, "max_ece": 0.05}


def _settings(root: Path, **promotion: float) -> config.Settings:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["promotion"] = {**POLICY, **promotion}
    path = root / f"params-{len(promotion)}.yaml"
    path.write_text(yaml.safe_dump(params))
    return config.load(path, root=root, mlflow_tracking_uri=f"sqlite:///{root}/mlruns.db")


@pytest.fixture(scope="module")
def root(small_sim: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    from features.table import snapshot_dates, write_feature_table

    root = tmp_path_factory.mktemp("registry")
    shutil.copy(Path(__file__).resolve().parents[2] / "params.yaml", root / "params.yaml")
    shutil.copytree(small_sim / "truth", root / "data" / "truth")
    dates = snapshot_dates(dt.date(2025, 1, 1), 12, 6)
    write_feature_table(small_sim / "raw", root / "data" / "features" / "features.parquet", dates)
    return root


def test_promotion_rules_rollback_and_history(root: Path) -> None:
    from inference import registry as models
    from inference.churn import default_spec
    from training import registry
    from training.churn.pipeline import load_feature_table, promote_churn, split, train_and_log

    settings = _settings(root)
    train, holdout = split(settings, load_feature_table(settings))
    base = default_spec()
    # weak but sane: only failed payments (still monotone for the seed's three customers)
    one = type(base)(("failed_payments",), (), {}, ("failed_payments",), base.defaults)

    # 1. below the floor: refused although there is no champion at all
    weak = train_and_log(settings, train, holdout, WEAK, spec=one, run_name="weak")
    strict = _settings(root, min_auc=0.99)
    d = promote_churn(strict)
    assert d.action == "refused" and "below the floor: auc" in d.reason
    assert models.alias_version(settings, NAME, models.CHAMPION) is None

    # 2. first champion: the weak-but-sane model clears the normal floor
    d = promote_churn(settings)
    assert d.action == "promoted", d.reason
    assert models.alias_version(settings, NAME, models.CHAMPION) == weak.version

    # 3. a better challenger (all features, more epochs) beats it by the margin
    strong = train_and_log(settings, train, holdout, FAST, run_name="strong")
    assert strong.metrics["auc"] > weak.metrics["auc"] + POLICY["margin"]
    d = promote_churn(settings)
    assert d.action == "promoted" and "beats champion" in d.reason, d.reason
    assert d.champion_metrics["auc"] < d.metrics["auc"]
    assert models.alias_version(settings, NAME, models.CHAMPION) == strong.version

    # 4. a deliberately worse challenger (the weak model again) is refused, champion unchanged
    worse = registry.register_candidate(settings, weak.model_uri, NAME, {"note": "worse"})
    d = promote_churn(settings)
    assert d.action == "refused" and d.version == worse
    assert "does not beat champion" in d.reason
    assert models.alias_version(settings, NAME, models.CHAMPION) == strong.version
    tags = models.version_tags(settings, NAME, worse)
    assert tags["promotion.decision"] == "refused" and "margin" in tags["promotion.reason"]

    # 5. rollback restores the previous champion in one step
    d = registry.rollback(NAME, settings)
    assert models.alias_version(settings, NAME, models.CHAMPION) == weak.version
    assert d.previous == strong.version

    events = registry.history(NAME, settings)
    assert [e.action for e in events] == ["refused", "promoted", "promoted", "refused", "rollback"]
    assert all(e.who and e.when and e.reason for e in events)
    assert events[2].metrics["auc"] == pytest.approx(strong.metrics["auc"], abs=1e-4)

    # the service's loader serves what the alias says
    scorer, version = registry.load_scorer(NAME, "champion", settings)
    assert version == weak.version and scorer(holdout).shape == (len(holdout),)

    with pytest.raises(Exception, match="no previous champion"):
        registry.rollback(NAME, settings)

    # 6. another promoter moves the champion while this one evaluates (two `promote` runs at
    #    once): refused with the reason, the other promoter's champion kept. Before: both said
    #    "promoted", the alias went to whichever wrote last, the history had two champions.
    calls: list[str] = []

    def evaluate_while_another_wins(scorer) -> dict[str, float]:
        if not calls:  # the candidate, evaluated first: meanwhile the alias moves to `worse`
            registry.tracking.set_alias(settings, NAME, models.CHAMPION, worse)
        calls.append("x")
        return {"auc": 0.9 if len(calls) == 1 else 0.6, "brier": 0.05, "ece": 0.01}

    policy = registry.Policy("auc", 0.005)
    d = registry.promote(
        NAME, settings, evaluate_while_another_wins, policy, version=strong.version
    )
    assert d.action == "refused" and d.previous == weak.version, d.reason
    assert f"moved from v{weak.version} to v{worse}" in d.reason
    assert models.alias_version(settings, NAME, models.CHAMPION) == worse
