"""Driving a challenger's safe rollout: start, status, abort, and the stage machine's loop.

`start_rollout` pins the registry's `challenger` (and the `champion` it would replace) in a new
running row of the store's `rollouts` table; the service loads that version and routes by the
current stage (`serving/rollout.py`), judging the live guards itself. `drive` moves the stage
forward after each baking period (`inference.rollout.next_step`), and after the last stage moves
the `champion` alias and appends the decision to the promotion history (`training.registry`) with
the rollout's evidence: the stages passed and the guard readings of each. A rollout the service
rolled back, or an operator aborted, ends without touching any alias.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from inference import rollout_state
from inference.registry import CHALLENGER, CHAMPION, CHURN_MODEL, alias_version
from inference.rollout import ABORTED, ADVANCE, ENDED, HOLD, PROMOTE, PROMOTED, RUNNING, next_step
from inference.rollout_state import RolloutView
from paycycle.config import Settings
from paycycle.errors import DataError
from training import registry, tracking


def _engine(settings: Settings) -> Any:
    from paycycle.store import make_engine

    return make_engine(settings.db_url)


def start_rollout(settings: Settings, model: str = CHURN_MODEL) -> RolloutView:
    """Start rolling out `model@challenger`.

    Raises:
        DataError: no challenger, the challenger already is the champion, or a rollout of
            `model` is running.
    """
    challenger = alias_version(settings, model, CHALLENGER)
    if challenger is None:
        raise DataError(f"model: {model}@{CHALLENGER} is not set; train and register one first")
    champion = alias_version(settings, model, CHAMPION)
    if champion == challenger:
        raise DataError(f"model: {model} v{challenger} already is the champion")
    return rollout_state.begin(_engine(settings), model, challenger, champion)


def rollout_status(settings: Settings, model: str = CHURN_MODEL) -> RolloutView:
    """The newest rollout of `model`.

    Raises:
        DataError: none was ever started.
    """
    view = rollout_state.latest(_engine(settings), model)
    if view is None:
        raise DataError(f"model: no rollout of {model} yet (paycycle rollout start)")
    return view


def abort_rollout(
    settings: Settings, reason: str = "aborted by an operator", model: str = CHURN_MODEL
) -> RolloutView:
    """Stop routing to the challenger (every worker within `rollout.poll_s`); aliases unchanged.

    Raises:
        DataError: no rollout of `model` is running.
    """
    engine = _engine(settings)
    view = rollout_state.latest(engine, model)
    if view is None or view.state != RUNNING:
        raise DataError(f"model: no rollout of {model} is running")
    rollout_state.end(engine, view.rollout_id, ABORTED, reason)
    return rollout_state.get(engine, view.rollout_id)


def step(settings: Settings, rollout_id: int, now: dt.datetime | None = None) -> str:
    """Apply the stage machine once; returns the rollout's state or `hold`/`advance`."""
    engine = _engine(settings)
    view = rollout_state.get(engine, rollout_id)
    if view.state in ENDED:
        return view.state
    now = now or dt.datetime.now(dt.UTC)
    readings = view.readings or {}
    fresh = view.readings_at is not None and view.readings_at >= view.stage_started_at
    stages = settings.params.rollout.stages
    decided = next_step(
        view.stage,
        stages,
        (now - view.stage_started_at).total_seconds(),
        fresh,
        int(readings.get("calls", 0)),
    )
    passed = {
        "stage": stages[view.stage].name,
        "percent": stages[view.stage].percent,
        "started": view.stage_started_at.isoformat(timespec="seconds"),
        "passed": now.isoformat(timespec="seconds"),
        "readings": readings,
    }
    if decided.action == HOLD:
        return HOLD
    if decided.action == ADVANCE:
        rollout_state.move_to(engine, rollout_id, decided.stage, passed)
        return ADVANCE
    assert decided.action == PROMOTE
    return _promote(settings, view, passed)


def _promote(settings: Settings, view: RolloutView, passed: dict[str, Any]) -> str:
    """Move `champion` to the challenger and record the rollout's evidence in the history."""
    engine = _engine(settings)
    current = alias_version(settings, view.model, CHAMPION)
    timeline = [*view.timeline, passed]
    if current != view.champion_version:
        reason = f"champion moved to v{current} during the rollout; not promoting"
        rollout_state.end(engine, view.rollout_id, ABORTED, reason)
        return ABORTED
    if not rollout_state.end(engine, view.rollout_id, PROMOTED, "passed every stage", None, passed):
        return rollout_state.get(engine, view.rollout_id).state  # rolled back meanwhile
    tracking.set_alias(settings, view.model, CHAMPION, view.challenger_version)
    stages = ", ".join(f"{t['stage']} ({t['percent']:g}%)" for t in timeline)
    metrics = {
        f"rollout.{t['stage']}.{key}": float(value)
        for t in timeline
        for key, value in t["readings"].items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    registry.record_decision(
        settings,
        registry.Decision(
            view.model,
            registry.PROMOTED,
            view.challenger_version,
            view.champion_version,
            f"safe rollout {view.rollout_id} passed every stage: {stages}; live guards held",
            metrics=metrics,
            who=registry.actor(),
            when=registry.now(),
        ),
    )
    return PROMOTED


def drive(
    settings: Settings,
    rollout_id: int,
    timeout_s: float | None = None,
    on_step: Callable[[str, RolloutView], None] | None = None,
) -> RolloutView:
    """Run the stage machine every `rollout.poll_s` until the rollout ends (or `timeout_s`).

    Returns:
        The rollout as it ended (or as it stood at the timeout).
    """
    poll = settings.params.rollout.poll_s
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    engine = _engine(settings)
    while True:
        outcome = step(settings, rollout_id)
        view = rollout_state.get(engine, rollout_id)
        if on_step is not None and outcome != HOLD:
            on_step(outcome, view)
        if view.state in ENDED or (deadline is not None and time.monotonic() > deadline):
            return view
        time.sleep(poll)
