"""Prefect deployments and their schedules: daily billing, outbox delivery every 5 minutes,
daily monitoring, weekly retraining.

`paycycle deploy` registers them against the server in `PREFECT_API_URL`, on a `process` work
pool that `prefect worker start --pool paycycle` serves (the docker-compose `prefect-worker`).
The flows are loaded from this project directory, so a worker on the same image runs them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORK_POOL = "paycycle"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Schedule:
    name: str
    entrypoint: str
    cron: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)


SCHEDULES: tuple[Schedule, ...] = (
    Schedule(
        "daily-billing",
        "flows/billing.py:daily_billing",
        "0 6 * * *",
        "Compute the day's notices, enqueue them in the outbox, deliver.",
    ),
    Schedule(
        "outbox-delivery",
        "flows/billing.py:deliver_outbox",
        "*/5 * * * *",
        "Deliver due notices (retries past their backoff) between daily billing runs.",
    ),
    Schedule(
        "daily-monitoring",
        "flows/monitor.py:monitor_and_retrain",
        "0 7 * * *",
        "Drift report on yesterday's traffic and data; retrain and promote when drift is real.",
    ),
    Schedule(
        "weekly-retraining",
        "flows/train.py:train",
        "0 3 * * 1",
        "Tune, train, evaluate, register and promote by rule.",
    ),
)


def ensure_work_pool(name: str = WORK_POOL) -> None:
    """Create the process work pool if the server does not have it yet."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=name, type="process"))


def deploy_all(source: Path = PROJECT_ROOT, work_pool: str = WORK_POOL) -> list[str]:
    """Register every deployment in `SCHEDULES`; returns their ids. Re-running updates them."""
    from prefect import flow

    ensure_work_pool(work_pool)
    ids = []
    for s in SCHEDULES:
        remote = flow.from_source(source=str(source), entrypoint=s.entrypoint)
        ids.append(
            str(
                remote.deploy(
                    name=s.name,
                    work_pool_name=work_pool,
                    cron=s.cron,
                    description=s.description,
                    parameters=s.parameters,
                    print_next_steps=False,
                    tags=["paycycle"],
                )
            )
        )
    return ids
