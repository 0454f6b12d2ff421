"""Rollout state in the store (`rollouts` table, migration 0007): the one record the driver
(CLI and Prefect flow) and every service worker share.

Writers never overwrite each other's decision: ending a rollout and moving its stage are
conditional updates on `state = 'running'`, so a service that rolls back on a breach and a
driver that advances in the same second cannot both win; the loser sees it ended.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Engine, select, update

from inference.rollout import RUNNING
from paycycle.errors import DataError
from paycycle.store import Rollout, session_scope


@dataclass(frozen=True)
class RolloutView:
    """A rollout as read at one moment (a plain copy: no session attached)."""

    rollout_id: int
    model: str
    challenger_version: str
    champion_version: str | None
    state: str
    stage: int
    stage_started_at: dt.datetime
    started_at: dt.datetime
    finished_at: dt.datetime | None
    reason: str | None
    readings: dict[str, Any] | None
    readings_at: dt.datetime | None
    timeline: list[Any]

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key, value in out.items():
            if isinstance(value, dt.datetime):
                out[key] = value.isoformat(timespec="milliseconds")
        return out


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _view(row: Rollout) -> RolloutView:
    values = {f.name: getattr(row, f.name) for f in fields(RolloutView)}
    return RolloutView(**values | {"timeline": list(row.timeline or [])})


def latest(engine: Engine, model: str) -> RolloutView | None:
    """The newest rollout of `model` (running or ended), or None."""
    with session_scope(engine) as session:
        row = session.scalars(
            select(Rollout).where(Rollout.model == model).order_by(Rollout.rollout_id.desc())
        ).first()
        return None if row is None else _view(row)


def get(engine: Engine, rollout_id: int) -> RolloutView:
    """One rollout by id.

    Raises:
        DataError: no such rollout.
    """
    with session_scope(engine) as session:
        row = session.get(Rollout, rollout_id)
        if row is None:
            raise DataError(f"rollout_id: no rollout {rollout_id}")
        return _view(row)


def begin(engine: Engine, model: str, challenger: str, champion: str | None) -> RolloutView:
    """Insert a running rollout at stage 0.

    Raises:
        DataError: `model` already has a running rollout (abort it first).
    """
    now = _now()
    with session_scope(engine) as session:
        running = session.scalars(
            select(Rollout).where(Rollout.model == model, Rollout.state == RUNNING)
        ).first()
        if running is not None:
            raise DataError(
                f"model: {model} already has rollout {running.rollout_id} running "
                "(paycycle rollout abort)"
            )
        row = Rollout(
            model=model,
            challenger_version=challenger,
            champion_version=champion,
            state=RUNNING,
            stage=0,
            stage_started_at=now,
            started_at=now,
            timeline=[],
        )
        session.add(row)
        session.flush()
        return _view(row)


def report(engine: Engine, rollout_id: int, readings: dict[str, Any]) -> None:
    """The service's latest guard readings on a running rollout."""
    with session_scope(engine) as session:
        session.execute(
            update(Rollout)
            .where(Rollout.rollout_id == rollout_id, Rollout.state == RUNNING)
            .values(readings=readings, readings_at=_now())
        )


def end(
    engine: Engine,
    rollout_id: int,
    state: str,
    reason: str,
    readings: dict[str, Any] | None = None,
    timeline_entry: dict[str, Any] | None = None,
) -> bool:
    """End a running rollout (`rolled_back`, `aborted`, `promoted`); False if it had ended."""
    now = _now()
    with session_scope(engine) as session:
        row = session.get(Rollout, rollout_id, with_for_update=True)
        if row is None or row.state != RUNNING:
            return False
        values: dict[str, Any] = {"state": state, "reason": reason, "finished_at": now}
        if readings is not None:
            values |= {"readings": readings, "readings_at": now}
        if timeline_entry is not None:
            values["timeline"] = [*(row.timeline or []), timeline_entry]
        done = session.execute(
            update(Rollout)
            .where(Rollout.rollout_id == rollout_id, Rollout.state == RUNNING)
            .values(**values)
        )
        return bool(done.rowcount)


def move_to(engine: Engine, rollout_id: int, stage: int, passed: dict[str, Any]) -> bool:
    """Start `stage` on a running rollout, recording the stage just `passed`; False if ended."""
    with session_scope(engine) as session:
        row = session.get(Rollout, rollout_id, with_for_update=True)
        if row is None or row.state != RUNNING:
            return False
        done = session.execute(
            update(Rollout)
            .where(Rollout.rollout_id == rollout_id, Rollout.state == RUNNING)
            .values(
                stage=stage,
                stage_started_at=_now(),
                timeline=[*(row.timeline or []), passed],
                readings=None,
                readings_at=None,
            )
        )
        return bool(done.rowcount)
