"""The rollout flow: start (or resume) a challenger's safe rollout and drive its stages.

Thin on purpose: `training.rollout` holds the logic (start, one stage-machine step, promotion
with evidence); the service judges the live guards and rolls back on its own. The flow's run
ends when the rollout ends: promoted, rolled back or aborted.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def start_task(settings: Any, model: str) -> int:
    from training.rollout import start_rollout

    return start_rollout(settings, model).rollout_id


@task(cache_policy=NO_CACHE, log_prints=True)
def drive_task(settings: Any, rollout_id: int, timeout_s: float | None) -> dict[str, Any]:
    from training.rollout import drive

    def show(outcome: str, view: Any) -> None:
        stage = settings.params.rollout.stages[view.stage].name
        print(f"rollout {rollout_id}: {outcome} ({view.state}, stage {stage})")

    return drive(settings, rollout_id, timeout_s, on_step=show).as_dict()


@flow(name="rollout", log_prints=True)
def rollout_flow(
    settings: Any,
    model: str = "paycycle-churn",
    rollout_id: int | None = None,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Start a rollout of `model@challenger` (or resume `rollout_id`) and drive it to its end.

    Returns:
        The rollout as it ended (`inference.rollout_state.RolloutView.as_dict`).
    """
    if rollout_id is None:
        rollout_id = start_task(settings, model)
    return drive_task(settings, rollout_id, timeout_s)
