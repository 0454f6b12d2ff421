"""One day of the billing monitor: compute → enqueue → deliver, shared by the CLI and the flow.

`run_day` is the only composition of a day. Its steps (`compute_due`, `summarize_due`,
`enqueue_due`, `deliver_due`) each open their own engine from the settings; the CLI runs them as
they are, and `flows.billing` passes Prefect tasks wrapping the same functions (`DaySteps`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

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
    due: int = 0  # notices due that day

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures: `as_of`, `due`, and `enqueue`/`delivery` when they ran."""
        out: dict[str, Any] = {"as_of": self.as_of.isoformat(), "due": self.due}
        if self.enqueued is not None:
            out["enqueue"] = asdict(self.enqueued)
        if self.delivery is not None:
            out["delivery"] = asdict(self.delivery)
        return out


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
        links=make_signer(settings) is not None,  # named now, signed when sent
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


@contextmanager
def _engine(settings: Settings) -> Iterator[Engine]:
    from paycycle.store import make_engine

    engine = make_engine(settings.db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def compute_due(
    settings: Settings,
    as_of: dt.date,
    recommendations: pd.DataFrame | None = None,
    offers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Step: the day's due notices (`compute`) on the settings' store."""
    with _engine(settings) as engine:
        return compute(engine, settings, as_of, recommendations, offers)


def summarize_due(settings: Settings, due: pd.DataFrame) -> pd.DataFrame:
    """Step: counts by kind and outbox status (`summarize`) on the settings' store."""
    with _engine(settings) as engine:
        return summarize(engine, due, settings)


def enqueue_due(settings: Settings, due: pd.DataFrame, channel: str) -> EnqueueResult:
    """Step: insert the due notices into the outbox; existing dedup keys are skipped."""
    from notify.outbox import enqueue

    with _engine(settings) as engine:
        return enqueue(engine, due, channel)


def deliver_due(settings: Settings, channel: str | None = None) -> DeliveryStats:
    """Step: deliver every due notice of `channel` (claims are leased, so a retry is safe).

    Also the whole of the deliver-only run (`paycycle deliver`, the `outbox-delivery`
    schedule) that retries failed notices whose backoff has passed. Links are signed here, at
    send time; with a model configured, texts are generated first (`notify.personalise`).
    """
    from notify.channels import make_channel
    from notify.links import make_signer
    from notify.outbox import deliver
    from notify.personalise import make_generator

    channel = channel or settings.params.notify.channel
    signer = make_signer(settings)
    with _engine(settings) as engine:
        sink = make_channel(channel, settings)
        try:
            # model texts (when PAYCYCLE_LLM_* is set) are ready before the first send
            generator, _ = make_generator(engine, settings, channel)
            return deliver(engine, sink, settings.params.notify, links=signer, generator=generator)
        finally:
            sink.close()


@dataclass(frozen=True)
class DaySteps:
    """The steps `run_day` composes; the flow swaps in Prefect tasks wrapping the same ones."""

    compute: Callable[..., pd.DataFrame] = compute_due
    summarize: Callable[..., pd.DataFrame] = summarize_due
    enqueue: Callable[..., EnqueueResult] = enqueue_due
    deliver: Callable[..., DeliveryStats] = deliver_due


def run_day(
    settings: Settings,
    as_of: dt.date,
    channel: str | None = None,
    dry_run: bool = False,
    recommendations: pd.DataFrame | None = None,
    offers: pd.DataFrame | None = None,
    steps: DaySteps = DaySteps(),
) -> DayReport:
    """Compute the day's notices and, unless `dry_run`, enqueue and deliver them.

    Args:
        settings: project settings (store URL, `notify` params).
        as_of: the day.
        channel: `file`, `smtp` or `webhook`; defaults to `notify.channel`.
        dry_run: only compute; the outbox is not touched.
        recommendations: recommender output; None reads the store's `scores`.
        offers: offer policy output; None reads `notify.offer_policy_path` if it exists.
        steps: the step functions (the flow passes its tasks).

    Returns:
        Counts by kind and status, plus enqueue and delivery figures.
    """
    channel = channel or settings.params.notify.channel
    due = steps.compute(settings, as_of, recommendations, offers)
    report = DayReport(as_of, channel, dry_run, steps.summarize(settings, due), due=len(due))
    if dry_run:
        return report
    report.enqueued = steps.enqueue(settings, due, channel)
    report.delivery = steps.deliver(settings, channel)
    report.counts = steps.summarize(settings, due)
    return report
