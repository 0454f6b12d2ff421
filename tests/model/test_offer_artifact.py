"""The offer policy's JSON artifact answers exactly like the fitted sklearn policy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from paycycle.config import OfferParams
from paycycle.errors import DataError

AS_OF = "2025-12-01"


@pytest.fixture(scope="module")
def fitted(small_sim: Path):
    from features.build import build_features, load_events
    from training.offers.learning import fit_offer_policy

    events = load_events(small_sim / "raw")
    return fit_offer_policy(events, AS_OF, OfferParams()), build_features(events, AS_OF)


@pytest.fixture()
def exported(fitted, tmp_path: Path) -> Path:
    from training.offers.export import export_offer_policy

    return export_offer_policy(fitted[0], tmp_path / "policy", {"as_of": AS_OF})


def test_loaded_policy_matches_the_fitted_one(fitted, exported: Path) -> None:
    from inference.offer_artifact import load_offer_policy

    policy, frame = fitted
    loaded = load_offer_policy(exported)
    assert len(policy.accept.models) >= 3  # most types have their own logistic fit
    np.testing.assert_allclose(loaded.accept.predict(frame), policy.accept.predict(frame),
                               rtol=0, atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(loaded.effect, policy.effect, rtol=0, atol=1e-15)
    p = np.random.default_rng(0).uniform(0, 0.6, len(frame))
    a, b = policy.decide(frame, p, 500.0), loaded.decide(frame, p, 500.0)
    assert a["offer_type"].fillna("-").tolist() == b["offer_type"].fillna("-").tolist()
    np.testing.assert_allclose(a["expected_value"], b["expected_value"], atol=1e-9)
    assert loaded.meta == {"as_of": AS_OF}


def test_called_on_raw_records_gives_acceptance_probabilities(exported: Path) -> None:
    from inference.offer_artifact import load_offer_policy

    out = load_offer_policy(exported)(
        [{"subscription_duration": 3, "failed_payments": 2, "usage_pattern": 20}]
    )
    assert out.shape == (1, 5) and ((out > 0) & (out < 1)).all()


def test_a_policy_for_other_features_is_refused(exported: Path) -> None:
    from inference.offer_artifact import POLICY_FILE, load_offer_policy

    raw = json.loads((exported / POLICY_FILE).read_text())
    raw["numeric"] = raw["numeric"][:-1]
    (exported / POLICY_FILE).write_text(json.dumps(raw))
    with pytest.raises(DataError, match="feature contract"):
        load_offer_policy(exported)
    with pytest.raises(DataError, match="not an exported offer policy"):
        load_offer_policy(exported.parent)
