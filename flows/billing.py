"""Daily billing flow: compute the day's notices → enqueue them in the outbox → deliver.

Tasks are thin wrappers over `notify/`; retries are declared here. Re-running a day is safe
(the outbox de-duplicates), so task retries need no extra care.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, task

CRON = "0 6 * * *"  # every day at 06:00, before the monitoring flow
DEPLOYMENT_NAME = "daily-billing"


@task(retries=2, retry_delay_seconds=30, log_prints=True)
def compute_notices(as_of: dt.date, root: str | None = None) -> Any:
    """The day's due notices as a DataFrame."""
    from notify.daily import compute
    from paycycle import config
    from paycycle.store import make_engine

    settings = config.load(root=root) if root else config.load()
    engine = make_engine(settings.db_url)
    try:
        due = compute(engine, settings, as_of)
    finally:
        engine.dispose()
    print(f"{as_of}: {len(due)} notices due")
    return due


@task(retries=2, retry_delay_seconds=30, log_prints=True)
def enqueue_notices(due: Any, channel: str, root: str | None = None) -> dict[str, int]:
    """Insert into the outbox; existing dedup keys are skipped."""
    from dataclasses import asdict

    from notify.outbox import enqueue
    from paycycle import config
    from paycycle.store import make_engine

    settings = config.load(root=root) if root else config.load()
    engine = make_engine(settings.db_url)
    try:
        result = asdict(enqueue(engine, due, channel))
    finally:
        engine.dispose()
    print(f"enqueued {result}")
    return result


@task(retries=3, retry_delay_seconds=60, log_prints=True)
def deliver_notices(channel: str, root: str | None = None) -> dict[str, Any]:
    """Deliver every due notice of `channel` (claims are leased, so a retry is safe)."""
    from dataclasses import asdict

    from notify.channels import make_channel
    from notify.outbox import deliver
    from paycycle import config
    from paycycle.store import make_engine

    settings = config.load(root=root) if root else config.load()
    engine = make_engine(settings.db_url)
    sink = make_channel(channel, settings)
    try:
        stats = asdict(deliver(engine, sink, settings.params.notify))
    finally:
        sink.close()
        engine.dispose()
    print(f"delivered {stats}")
    return stats


@flow(name="daily-billing", log_prints=True)
def daily_billing(
    as_of: dt.date | None = None,
    channel: str | None = None,
    dry_run: bool = False,
    root: str | None = None,
) -> dict[str, Any]:
    """One day of the billing monitor.

    Args:
        as_of: the day (default: today, UTC).
        channel: `file`, `smtp` or `webhook` (default: `notify.channel`).
        dry_run: compute only.
        root: project root (default: the installed project / `$PAYCYCLE_ROOT`).

    Returns:
        Counts: notices due, enqueued/duplicates/dead, and delivery figures.
    """
    from paycycle import config

    as_of = as_of or dt.datetime.now(dt.UTC).date()
    settings = config.load(root=root) if root else config.load()
    channel = channel or settings.params.notify.channel
    due = compute_notices(as_of, root)
    out: dict[str, Any] = {"as_of": as_of.isoformat(), "due": len(due)}
    if dry_run:
        return out
    out["enqueue"] = enqueue_notices(due, channel, root)
    out["delivery"] = deliver_notices(channel, root)
    return out


def deployment(cron: str = CRON, **kwargs: Any) -> Any:
    """A runnable deployment of `daily_billing` on a daily cron (for `prefect` serve/deploy)."""
    return daily_billing.to_deployment(
        name=DEPLOYMENT_NAME,
        cron=cron,
        description="Compute the day's notices, enqueue them in the outbox, deliver.",
        tags=["paycycle", "billing"],
        **kwargs,
    )
