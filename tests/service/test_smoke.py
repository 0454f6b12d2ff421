"""The promotion smoke test and the compiled serving path, on the real registered champion."""

from __future__ import annotations

import numpy as np
import pytest

from features.columns import customers_to_columns
from inference.compiled import compile_scorer
from inference.smoke import SEED_CUSTOMERS, smoke_test
from paycycle import config

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def champion(champion_store):
    from inference.registry import load_scorer

    settings = config.load(mlflow_tracking_uri=champion_store[0])
    return load_scorer("paycycle-churn", settings=settings)[0]


def test_champion_passes_smoke_test(champion) -> None:
    assert smoke_test(champion) == []


def test_compiled_path_matches_the_scorer(champion) -> None:
    rows = [
        {**c, "segment": seg, "plan_tier": tier}
        for c in SEED_CUSTOMERS
        for seg, tier in (("smb", 1.0), ("enterprise", 4.0))
    ]
    cols = customers_to_columns(rows)
    compiled = compile_scorer(champion)
    # the registered export's NumPy pass, read at load (the download is deleted after it)
    assert champion.forward is not None and compiled is champion.forward
    np.testing.assert_allclose(compiled(cols), champion(cols), atol=1e-7)


@pytest.mark.parametrize(
    ("probs", "problem"),
    [
        ([0.3, 0.2, 0.1], "strictly increasing"),
        ([0.1, 0.1, 0.2], "strictly increasing"),
        ([0.1, 0.2, 1.5], "in [0, 1]"),
        ([0.1, np.nan, 0.2], "in [0, 1]"),
        ([0.1, 0.2], "expected 3"),
    ],
)
def test_smoke_test_reports_bad_candidates(probs: list[float], problem: str) -> None:
    def candidate(cols):  # a stand-in model with a known answer
        return np.array(probs)

    found = smoke_test(candidate)
    assert found and problem in found[0]


def test_smoke_test_reports_a_crashing_candidate() -> None:
    def candidate(cols):
        raise ValueError("graph broke")

    assert "graph broke" in smoke_test(candidate)[0]
