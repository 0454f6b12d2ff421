"""The rollout's rules (inference.rollout) and shared state (inference.rollout_state), directly."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from inference import rollout_state
from inference.rollout import (
    ADVANCE,
    HOLD,
    PROMOTE,
    Readings,
    breaches,
    bucket,
    in_canary,
    ks_distance,
    measure,
    next_step,
)
from paycycle.config import RolloutParams, RolloutStage
from paycycle.errors import DataError

LIMITS = RolloutParams()


def test_bucket_is_stable_and_spreads_customers_evenly() -> None:
    ids = list(range(20_000))
    assert [bucket(i) for i in ids[:50]] == [bucket(str(i)) for i in ids[:50]]
    share = in_canary(ids, 10).mean()
    assert 0.09 < share < 0.11
    # a customer in the 5% stage stays with the challenger in the 25% stage
    assert not (in_canary(ids, 5) & ~in_canary(ids, 25)).any()
    assert not in_canary(ids, 0).any() and in_canary(ids, 100).all()


def test_ks_distance_separates_a_constant_from_a_spread() -> None:
    rng = np.random.default_rng(3)
    live = rng.beta(2, 12, 2_000)
    assert ks_distance(live, rng.beta(2, 12, 2_000)) < 0.06
    assert ks_distance(np.full(500, 0.99), live) > 0.99


@pytest.mark.parametrize(
    ("readings", "guard"),
    [
        (Readings(calls=100, errors=10), "error rate"),
        (Readings(calls=100, p99_ms=900.0), "p99"),
        (Readings(calls=100, scores=500, shift=0.8), "score shift"),
    ],
)
def test_each_guard_names_its_breach(readings: Readings, guard: str) -> None:
    (reason,) = breaches(readings, LIMITS)
    assert reason.startswith(guard)


def test_guards_wait_for_enough_traffic_and_realized_hook() -> None:
    assert breaches(Readings(calls=5, errors=5), LIMITS) == []  # below min_requests
    assert breaches(Readings(calls=100, errors=1), LIMITS) == []
    low = Readings(calls=100, realized=0.8)
    assert breaches(low, LIMITS, min_realized=0.9)[0].startswith("realized performance")


def test_measure_leaves_shift_unjudged_until_min_scores() -> None:
    few = measure(30, 0, np.array([0.01] * 30), np.full(30, 0.99), np.full(30, 0.1), LIMITS)
    assert few.shift is None and few.p99_ms == pytest.approx(10.0)
    many = measure(30, 0, np.array([]), np.full(200, 0.99), np.full(200, 0.1), LIMITS)
    assert many.shift == 1.0 and breaches(many, LIMITS)


STAGES = (
    RolloutStage(name="shadow", percent=0, bake_s=10),
    RolloutStage(name="full", percent=100, bake_s=10),
)


@pytest.mark.parametrize(
    ("stage", "baked", "fresh", "calls", "action"),
    [
        (0, 5, True, 50, HOLD),  # still baking
        (0, 12, False, 50, HOLD),  # no readings since the stage began
        (0, 12, True, 0, HOLD),  # nobody reached the challenger
        (0, 12, True, 50, ADVANCE),
        (1, 12, True, 50, PROMOTE),
    ],
)
def test_stage_machine(stage: int, baked: float, fresh: bool, calls: int, action: str) -> None:
    assert next_step(stage, STAGES, baked, fresh, calls).action == action


def test_stages_must_end_at_full_traffic() -> None:
    with pytest.raises(ValueError, match="100 percent"):
        RolloutParams(stages=(RolloutStage(name="shadow", percent=0, bake_s=1),))


def test_rollout_state_is_shared_and_ends_once(tmp_path) -> None:
    from paycycle.store import make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    engine = make_engine(url)
    view = rollout_state.begin(engine, "paycycle-churn", "3", "2")
    with pytest.raises(DataError, match="already has rollout"):
        rollout_state.begin(engine, "paycycle-churn", "4", "2")
    rollout_state.report(engine, view.rollout_id, {"calls": 7})
    assert rollout_state.move_to(engine, view.rollout_id, 1, {"stage": "shadow"})
    assert rollout_state.end(engine, view.rollout_id, "rolled_back", "error rate")
    assert not rollout_state.end(engine, view.rollout_id, "promoted", "late driver")
    final = rollout_state.latest(engine, "paycycle-churn")
    assert (final.state, final.stage, final.reason) == ("rolled_back", 1, "error rate")
    assert final.timeline == [{"stage": "shadow"}] and final.readings is None
    assert isinstance(final.finished_at, dt.datetime)


def test_rollout_commands_refuse_in_one_line(tmp_path) -> None:
    """No challenger to start, nothing running to abort: one line each, no traceback."""
    import shutil

    from paycycle.errors import EXIT_DATA
    from paycycle.store import upgrade
    from tests.code.test_cli_errors import assert_one_line_error, paycycle
    from tests.conftest import PROJECT_ROOT

    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    store = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(store)
    env = {"PAYCYCLE_DATABASE_URL": store, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"}
    abort = paycycle(tmp_path, "rollout", "abort", **env)
    assert_one_line_error(abort, EXIT_DATA, "no rollout of paycycle-churn is running")
    start = paycycle(tmp_path, "rollout", "start", **env)
    assert_one_line_error(start, EXIT_DATA, "paycycle-churn@challenger is not set")
