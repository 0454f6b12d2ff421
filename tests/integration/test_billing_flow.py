"""The daily-billing flow and `paycycle notify` run one composition (`notify.daily.run_day`):
on two copies of the same store they give the same figures and leave the same outbox."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from notify.outbox import notices
from paycycle import config
from paycycle.loader import migrate_and_load
from paycycle.store import make_engine
from tests.conftest import PROJECT_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DAY = dt.date(2025, 6, 10)


def make_store(root: Path, small_sim: Path) -> config.Settings:
    root.mkdir()
    shutil.copy(PROJECT_ROOT / "params.yaml", root / "params.yaml")
    shutil.copytree(small_sim / "raw", root / "data" / "raw")
    settings = config.load(root=root)
    migrate_and_load(settings)
    return settings


def outbox(settings: config.Settings) -> list[tuple[str, str, str]]:
    engine = make_engine(settings.db_url)
    try:
        with engine.connect() as conn:
            c = notices.c
            return sorted(conn.execute(select(c.dedup_key, c.kind, c.status)).all())
    finally:
        engine.dispose()


def test_flow_and_cli_function_give_the_same_day(
    tmp_path: Path, small_sim: Path, prefect_harness: Path
) -> None:
    from flows.billing import daily_billing
    from notify.daily import run_day

    by_flow = make_store(tmp_path / "flow", small_sim)
    by_function = make_store(tmp_path / "function", small_sim)

    dry = daily_billing(as_of=DAY, dry_run=True, root=str(by_flow.root))
    assert dry == run_day(by_function, DAY, dry_run=True).as_dict()
    assert set(dry) == {"as_of", "due"} and dry["due"] > 0
    assert outbox(by_flow) == []  # a dry run leaves the outbox alone

    out = daily_billing(as_of=DAY, root=str(by_flow.root))
    report = run_day(by_function, DAY)
    assert out.pop("idempotency_keys_purged") == 0  # the flow's one extra step
    assert out == report.as_dict()
    assert out["due"] == dry["due"] == out["enqueue"]["inserted"] + out["enqueue"]["dead"]
    assert out["delivery"]["sent"] > 0
    assert outbox(by_flow) == outbox(by_function)
    assert {status for _, _, status in outbox(by_flow)} <= {"sent", "dead"}

    again = daily_billing(as_of=DAY, root=str(by_flow.root))  # re-running a day is safe
    assert again["enqueue"]["duplicates"] == again["due"] and again["enqueue"]["inserted"] == 0
    assert again["delivery"]["sent"] == 0
