"""One day of the billing monitor: compute → enqueue → deliver, shared by the CLI and the flow."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from paycycle.errors import DataError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from notify.outbox import DeliveryStats, EnqueueResult
    from paycycle.config import Settings


@dataclass
class DayReport:
    """What a day's run did; `counts` has one row per kind."""

    as_of: dt.date
    channel: str
    dry_run: bool
    counts: pd.DataFrame
    enqueued: EnqueueResult | None = None
    delivery: DeliveryStats | None = None
    notes: list[str] = field(default_factory=list)


def load_offer_policy(settings: Settings) -> pd.DataFrame | None:
    """The offer policy's decisions (`notify.offer_policy_path`), or None when there are none.

    Raises:
        DataError: the file exists but cannot be read.
    """
    path = settings.path(settings.params.notify.offer_policy_path)
    if not path.exists():
        return None
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable offer policy output ({exc})") from None


def compute(
    engine: Engine,
    settings: Settings,
    as_of: dt.date,
    recommendations: pd.DataFrame | None = None,
    offers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The day's due notices (recommendations from the store's scores by default)."""
    from notify.cycles import due_notices
    from notify.links import make_signer

    if offers is None:
        offers = load_offer_policy(settings)
    return due_notices(
        engine,
        as_of,
        settings.params.notify,
        recommendations=recommendations,
        offers=offers,
        retention=settings.params.retention,
        links=make_signer(settings),
    )


def summarize(engine: Engine, due: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Counts by kind: due today, and the outbox status of those notices."""
    from sqlalchemy import func, select

    from notify.cycles import notice_kinds
    from notify.outbox import notices

    kinds = notice_kinds(settings.params.notify)
    table = pd.DataFrame({"kind": kinds}).set_index("kind")
    table["due"] = due.groupby("kind").size() if not due.empty else 0
    for status in ("pending", "sending", "sent", "failed", "dead"):
        table[status] = 0
    keys = list(due["dedup_key"]) if not due.empty else []
    c = notices.c
    with engine.connect() as conn:
        for i in range(0, len(keys), 10_000):
            stmt = (
                select(c.kind, c.status, func.count())
                .where(c.dedup_key.in_(keys[i : i + 10_000]))
                .group_by(c.kind, c.status)
            )
            for kind, status, n in conn.execute(stmt):
                if kind not in table.index:
                    table.loc[kind] = 0
                table.loc[kind, status] += n
    return table.fillna(0).astype(int).reset_index()


def run_day(
    settings: Settings,
    as_of: dt.date,
    channel: str | None = None,
    dry_run: bool = False,
    recommendations: pd.DataFrame | None = None,
    offers: pd.DataFrame | None = None,
) -> DayReport:
    """Compute the day's notices and, unless `dry_run`, enqueue and deliver them.

    Args:
        settings: project settings (store URL, `notify` params).
        as_of: the day.
        channel: `file`, `smtp` or `webhook`; defaults to `notify.channel`.
        dry_run: only compute; the outbox is not touched.
        recommendations: recommender output; None reads the store's `scores`.
        offers: offer policy output; None reads `notify.offer_policy_path` if it exists.

    Returns:
        Counts by kind and status, plus enqueue and delivery figures.
    """
    from notify.channels import make_channel
    from notify.outbox import deliver, enqueue
    from paycycle.store import make_engine

    channel = channel or settings.params.notify.channel
    engine = make_engine(settings.db_url)
    try:
        due = compute(engine, settings, as_of, recommendations, offers)
        report = DayReport(as_of, channel, dry_run, summarize(engine, due, settings))
        if dry_run:
            return report
        report.enqueued = enqueue(engine, due, channel)
        sink = make_channel(channel, settings)
        try:
            report.delivery = deliver(engine, sink, settings.params.notify)
        finally:
            sink.close()
        report.counts = summarize(engine, due, settings)
        return report
    finally:
        engine.dispose()
