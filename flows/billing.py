"""Daily billing flow: compute the day's notices → enqueue them in the outbox → deliver.

The day is composed once, by `notify.daily.run_day` (the CLI's `paycycle notify` runs the same
function); this flow runs it with its steps as tasks, which only add retries and a log line.
Re-running a day is safe (the outbox de-duplicates), so task retries need no extra care.
`deliver_outbox` is the deliver-only flow, scheduled every 5 minutes (`flows/deploy.py`), so a
failed notice is retried after its backoff instead of at the next daily run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

if TYPE_CHECKING:
    import pandas as pd

    from notify.outbox import DeliveryStats, EnqueueResult
    from paycycle.config import Settings

CRON = "0 6 * * *"  # every day at 06:00, before the monitoring flow
DEPLOYMENT_NAME = "daily-billing"
DELIVER_CRON = "*/5 * * * *"  # deliver-only: retries due notices between daily runs
DELIVER_DEPLOYMENT_NAME = "outbox-delivery"


@task(retries=2, retry_delay_seconds=30, cache_policy=NO_CACHE, log_prints=True)
def compute_notices(
    settings: Settings,
    as_of: dt.date,
    recommendations: pd.DataFrame | None = None,
    offers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The day's due notices as a DataFrame."""
    from notify.daily import compute_due

    due = compute_due(settings, as_of, recommendations, offers)
    print(f"{as_of}: {len(due)} notices due")
    return due


@task(retries=2, retry_delay_seconds=30, cache_policy=NO_CACHE)
def summarize_notices(settings: Settings, due: pd.DataFrame) -> pd.DataFrame:
    """Counts by kind and outbox status of the day's notices."""
    from notify.daily import summarize_due

    return summarize_due(settings, due)


@task(retries=2, retry_delay_seconds=30, cache_policy=NO_CACHE, log_prints=True)
def enqueue_notices(settings: Settings, due: pd.DataFrame, channel: str) -> EnqueueResult:
    """Insert into the outbox; existing dedup keys are skipped."""
    from notify.daily import enqueue_due

    result = enqueue_due(settings, due, channel)
    print(f"enqueued {asdict(result)}")
    return result


@task(retries=3, retry_delay_seconds=60, cache_policy=NO_CACHE, log_prints=True)
def deliver_notices(settings: Settings, channel: str) -> DeliveryStats:
    """Deliver every due notice of `channel` (claims are leased, so a retry is safe)."""
    from notify.daily import deliver_due

    stats = deliver_due(settings, channel)
    print(f"delivered {asdict(stats)}")
    return stats


@task(retries=2, retry_delay_seconds=30, cache_policy=NO_CACHE, log_prints=True)
def purge_idempotency_keys(settings: Settings) -> int:
    """Forget `/cancel-intent` answers past their replay window (24 h)."""
    from paycycle.store import make_engine
    from retention.saves import purge_expired_keys

    engine = make_engine(settings.db_url)
    try:
        purged = purge_expired_keys(engine)
    finally:
        engine.dispose()
    print(f"purged {purged} expired Idempotency-Key answers")
    return purged


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
        Counts: notices due, enqueued/duplicates/dead, delivery figures, and the expired
        `/cancel-intent` Idempotency-Key answers purged.
    """
    from notify.daily import DaySteps, run_day
    from paycycle import config

    as_of = as_of or dt.datetime.now(dt.UTC).date()
    settings = config.load(root=root) if root else config.load()
    steps = DaySteps(compute_notices, summarize_notices, enqueue_notices, deliver_notices)
    result = run_day(settings, as_of, channel, dry_run, steps=steps).as_dict()
    if not dry_run:
        result["idempotency_keys_purged"] = purge_idempotency_keys(settings)
    return result


@flow(name="outbox-delivery", log_prints=True)
def deliver_outbox(channel: str | None = None, root: str | None = None) -> dict[str, Any]:
    """Deliver-only: send every due notice of `channel` (pending, or failed past its backoff).

    Runs every few minutes (`DELIVER_CRON`), so a retry waits for its backoff, not for the
    next daily run. Safe next to the daily flow: claims are exclusive and leased.

    Args:
        channel: `file`, `smtp` or `webhook` (default: `notify.channel`).
        root: project root (default: the installed project / `$PAYCYCLE_ROOT`).

    Returns:
        The delivery figures.
    """
    from paycycle import config

    settings = config.load(root=root) if root else config.load()
    return asdict(deliver_notices(settings, channel or settings.params.notify.channel))


def deployment(cron: str = CRON, **kwargs: Any) -> Any:
    """A runnable deployment of `daily_billing` on a daily cron (for `prefect` serve/deploy)."""
    return daily_billing.to_deployment(
        name=DEPLOYMENT_NAME,
        cron=cron,
        description="Compute the day's notices, enqueue them in the outbox, deliver.",
        tags=["paycycle", "billing"],
        **kwargs,
    )
