"""The rollout flow on Prefect's test server: it ends with the rollout, reporting how."""

from __future__ import annotations

from inference import rollout_state


def test_rollout_flow_returns_how_the_rollout_ended(tmp_path, prefect_harness) -> None:
    """The flow drives until the rollout ends; one the service already rolled back ends it."""
    from flows.rollout import rollout_flow
    from paycycle import config
    from paycycle.store import make_engine, upgrade

    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    view = rollout_state.begin(make_engine(url), "paycycle-churn", "3", "2")
    rollout_state.end(make_engine(url), view.rollout_id, "rolled_back", "p99 800 ms > 500")
    settings = config.load(root=tmp_path, database_url=url)
    ended = rollout_flow.fn(settings, rollout_id=view.rollout_id, timeout_s=5)
    assert (ended["state"], ended["reason"]) == ("rolled_back", "p99 800 ms > 500")
