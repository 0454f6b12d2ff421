"""The offer policy goes through the shared tracking/registry code: logged, registered,
promoted only when it beats every baseline, loaded back by alias as the service loads it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from paycycle import config

SAMPLE = pd.DataFrame({"subscription_duration": [3.0], "failed_payments": [1.0],
                       "usage_pattern": [20.0]})  # fmt: skip


def _register_useless(project: config.Settings, policy) -> str:
    """Log and register a copy of `policy` that believes offers change nothing."""
    from inference.offer_artifact import load_offer_policy
    from inference.registry import OFFERS_MODEL
    from training import tracking
    from training.offers.export import export_offer_policy
    from training.offers.pipeline import OFFERS_EXPERIMENT
    from training.registry import register_candidate

    policy.effects = policy.effects.assign(effect=0.0)
    export = export_offer_policy(policy, project.root / "useless")
    with tracking.start_run(project, "useless", experiment=OFFERS_EXPERIMENT):
        uri = tracking.log_scorer_model(
            export, SAMPLE, load_offer_policy(export)(SAMPLE), OFFERS_MODEL
        )
    return register_candidate(project, uri, OFFERS_MODEL)


@pytest.mark.slow
def test_fit_register_promote_refuse_and_load(project: config.Settings) -> None:
    from inference.registry import OFFERS_MODEL, load_scorer
    from training.offers.pipeline import promote_offers, train_and_log_offers
    from training.registry import history

    result = train_and_log_offers(project)
    assert result.version == "1" and result.run_id
    m = result.metrics
    assert m["uplift_vs_best_baseline"] > 0 and m["uplift_vs_no_offers"] > 0, m
    decision = promote_offers(project)
    assert decision.promoted, decision.reason

    # never offering cannot beat "no offers": the floor refuses it, the champion stays
    assert _register_useless(project, result.policy) == "2"
    refused = promote_offers(project)
    assert not refused.promoted and "uplift_vs_best_baseline" in refused.reason
    assert [d.action for d in history(OFFERS_MODEL, project)] == ["promoted", "refused"]

    policy, version = load_scorer(OFFERS_MODEL, "champion", project)
    assert version == "1" and policy.meta["as_of"] == "2025-12-01"
    p = policy(SAMPLE)
    assert p.shape == (1, 5) and np.isfinite(p).all() and ((p > 0) & (p < 1)).all()


def test_promotion_without_truth_refuses_to_guess(project: config.Settings) -> None:
    import shutil

    from paycycle.errors import DataError
    from training.offers.pipeline import promote_offers

    shutil.rmtree(project.truth_dir)
    with pytest.raises(DataError, match="truth"):
        promote_offers(project)
