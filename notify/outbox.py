"""The notices outbox: enqueue once, claim with a lease, deliver, mark, back off, dead-letter.

Exactly-once, argued step by step (PostgreSQL; SQLite has one writer at a time, which is
stronger):

1. **Enqueue is idempotent.** `notices.dedup_key` (customer:kind:cycle date) is UNIQUE and rows
   go in with `INSERT … ON CONFLICT (dedup_key) DO NOTHING`, so re-running a day, or two flows
   racing on the same day, yields one row per notice. Nothing is lost: the insert commits before
   any delivery starts.
2. **A claim is exclusive.** `claim()` runs one statement,
   `UPDATE notices SET status='sending', claimed_by=<token>, claimed_at=now, attempts+1
   WHERE notice_id IN (SELECT … WHERE <due> LIMIT n FOR UPDATE SKIP LOCKED) AND <due>
   RETURNING …`. Concurrent workers skip rows another worker has locked, and PostgreSQL re-checks
   `<due>` on a row that changed while it waited, so a row is held by one token at a time.
   The claim commits at once (short transactions; sending happens outside them).
3. **Delivery is idempotent on the dedup key.** The channel gets the key with every message: the
   file channel skips a key already in its file (checked under an exclusive file lock), the
   webhook sends it as `Idempotency-Key`, SMTP as a stable `Message-ID`.
4. **Each outcome is recorded as it happens, fenced.** Right after the channel answers, one
   short transaction writes that message's `sent`/`failed`/`dead`, only `WHERE claimed_by =
   <token> AND status = 'sending'`; a worker whose lease expired and whose row was re-claimed
   cannot overwrite the new owner's outcome. (On PostgreSQL these commits use
   `synchronous_commit = off`, see `_marking`: a crash of the database server itself, not of a
   sender, may forget the marks of its last fraction of a second, and those messages are sent
   again.)
5. **Crashes lose nothing.** A worker killed after claiming leaves rows in `sending`; once
   `claimed_at` is older than the lease they are due again and re-claimed (they are never
   dropped, even past `max_attempts`: the next failure dead-letters them with a reason).
   Only the message being marked at the moment of the crash can have reached the channel
   without its `sent` mark; the re-claim sends it again and step 3 turns that into a no-op.

So every notice ends `sent` exactly once at the channel, or `dead` with `last_error` — with the
caveat that SMTP has no server-side idempotency: **a sender killed between the SMTP server
accepting a mail and its `sent` mark repeats that one mail, so at most one duplicate per crashed
sender** (same Message-ID, which mail stores de-duplicate). A lease shorter than one batch's
delivery time would make a live worker's rows look dead; keep `lease_seconds` well above
`batch_size` × the slowest send. Failed messages are retried by the next delivery run after
their backoff: `flows.billing.deliver_outbox` runs every few minutes for that.

Throughput: step 4 costs one round trip per message that cannot overlap the next send, so one
sender is bound by the store's commit latency (`deliver_per_s` in `benchmarks/bench_notify.py`).
The `sent` mark is therefore a compiled statement on the driver's cursor (`_Marks`). More
throughput means more delivery runs at once: step 2 keeps their claims apart and each keeps its
own at-most-one bound.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from notify.channels import Channel, DeliveryError, Message
from notify.links import LinkSigner, with_links
from notify.render import Generator, RenderError, render
from paycycle.config import NotifyParams
from paycycle.store import Json, UTCDateTime

# the columns of the store's `notices` table this module reads and writes, including the claim
# columns added by migration 0002
notices = Table(
    "notices",
    MetaData(),
    Column("notice_id", BigInteger, primary_key=True),
    Column("customer_id", BigInteger),
    Column("subscription_id", BigInteger),
    Column("kind", String(64)),
    Column("cycle_date", Date),
    Column("dedup_key", String(255)),
    Column("channel", String(32)),
    Column("locale", String(16)),
    Column("payload", Json),
    Column("status", String(16)),
    Column("attempts", Integer),
    Column("last_error", Text),
    Column("next_attempt_at", UTCDateTime),
    Column("created_at", UTCDateTime),
    Column("sent_at", UTCDateTime),
    Column("claimed_by", String(64)),
    Column("claimed_at", UTCDateTime),
)
Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class EnqueueResult:
    inserted: int = 0
    duplicates: int = 0
    dead: int = 0  # inserted already dead-lettered (bad data)


@dataclass
class DeliveryStats:
    sent: int = 0
    already_delivered: int = 0  # the channel had the key (re-claim after a crash)
    failed: int = 0
    dead: int = 0
    batches: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def _insert(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the store supports these two
        raise NotImplementedError(f"outbox: unsupported database {dialect!r}")
    return insert


def enqueue(
    engine: Engine,
    due: pd.DataFrame,
    channel: str,
    now: dt.datetime | None = None,
    chunk: int = 5_000,
) -> EnqueueResult:
    """Insert due notices; a dedup key already in the outbox is left alone.

    Args:
        engine: the store.
        due: rows from `notify.cycles.due_notices` (an `error` makes the row dead at once).
        channel: the channel the notices are for (`file`, `smtp`, `webhook`).
        now: creation time (tz-aware); defaults to the wall clock.
        chunk: rows per INSERT statement.

    Returns:
        How many rows were inserted, skipped as duplicates and dead-lettered.
    """
    now = now or utcnow()
    result = EnqueueResult()
    if due.empty:
        return result
    rows = []
    for rec in due.to_dict("records"):
        error = rec.get("error")
        bad = isinstance(error, str) and bool(error)
        sub = rec["subscription_id"]
        rows.append(
            {
                "customer_id": int(rec["customer_id"]),
                "subscription_id": None if sub is None or pd.isna(sub) else int(sub),
                "kind": rec["kind"],
                "cycle_date": rec["cycle_date"],
                "dedup_key": rec["dedup_key"],
                "channel": channel,
                "locale": rec["locale"] or "en",
                "payload": rec["payload"],
                "status": "dead" if bad else "pending",
                "attempts": 0,
                "last_error": error if bad else None,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    insert = _insert(engine.dialect.name)
    with engine.begin() as conn:
        for i in range(0, len(rows), chunk):
            part = rows[i : i + chunk]
            stmt = (
                insert(notices)
                .on_conflict_do_nothing(index_elements=["dedup_key"])
                .returning(notices.c.status)
            )
            statuses = conn.execute(stmt, part).scalars().all()
            result.inserted += len(statuses)
            result.dead += sum(s == "dead" for s in statuses)
    result.duplicates = len(rows) - result.inserted
    return result


def _due(now: dt.datetime, lease_seconds: float) -> Any:
    expired = now - dt.timedelta(seconds=lease_seconds)
    c = notices.c
    return or_(
        and_(
            c.status.in_(("pending", "failed")),
            or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now),
        ),
        and_(c.status == "sending", or_(c.claimed_at.is_(None), c.claimed_at <= expired)),
    )


def claim(
    engine: Engine,
    channel: str,
    worker: str,
    limit: int,
    lease_seconds: float,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Atomically take up to `limit` due notices for `channel` (see the module docstring, 2)."""
    now = now or utcnow()
    c = notices.c
    due = and_(c.channel == channel, _due(now, lease_seconds))
    picked = (
        select(c.notice_id)
        .where(due)
        .order_by(c.next_attempt_at, c.notice_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    stmt = (
        update(notices)
        .where(c.notice_id.in_(picked), due)
        .values(status="sending", claimed_by=worker, claimed_at=now, attempts=c.attempts + 1)
        .returning(
            c.notice_id,
            c.customer_id,
            c.kind,
            c.dedup_key,
            c.locale,
            c.payload,
            c.attempts,
        )
    )
    with engine.begin() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def backoff(attempts: int, params: NotifyParams) -> dt.timedelta:
    """Delay before the next attempt: `backoff_seconds · 2^(attempts-1)`, capped."""
    seconds = params.backoff_seconds * 2 ** max(attempts - 1, 0)
    return dt.timedelta(seconds=min(seconds, params.backoff_max_seconds))


def _fenced(notice_id: Any, worker: Any) -> Any:
    c = notices.c
    return and_(notice_id, c.claimed_by == worker, c.status == "sending")


class _Marks:
    """Records each message's outcome on one autocommit connection, one statement per mark.

    The `sent` mark, the one paid per message, is compiled once and run as that SQL on the
    driver's cursor (the driver prepares it on its side after a few runs): no expression building,
    no SQLAlchemy execution context, just one round trip and its commit. Failures are rare and
    keep the plain Core statement.
    """

    def __init__(self, conn: Connection, worker: str) -> None:
        c = notices.c
        self.conn, self.worker = conn, worker
        sent = (
            update(notices)
            .where(_fenced(c.notice_id == bindparam("mark_id"), bindparam("mark_worker")))
            .values(status="sent", sent_at=bindparam("mark_now"), last_error=None, claimed_by=None)
            .compile(dialect=conn.dialect)
        )
        self._sql = sent.string
        # by name: the constants ('sent', 'sending', ...) plus the three filled in per mark
        self._params = sent.construct_params(dict.fromkeys(("mark_id", "mark_worker", "mark_now")))
        self._order = sent.positiontup if sent.positional else None
        self._when = c.sent_at.type.bind_processor(conn.dialect) or (lambda v: v)
        self._cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def sent(self, row: dict[str, Any], now: dt.datetime) -> None:
        """Mark one delivered row `sent` (fenced on this run's claim), committed on return."""
        params = {
            **self._params,
            "mark_id": row["notice_id"],
            "mark_worker": self.worker,
            "mark_now": self._when(now),
        }
        if self._order is not None:  # a positional paramstyle (SQLite's `?`)
            self._cursor.execute(self._sql, tuple(params[k] for k in self._order))
        else:
            self._cursor.execute(self._sql, params)

    def close(self) -> None:
        self._cursor.close()

    def failed(
        self,
        row: dict[str, Any],
        failure: tuple[str, bool],
        params: NotifyParams,
        now: dt.datetime,
        stats: DeliveryStats,
    ) -> None:
        """Record a failure: `failed` with its backoff, or `dead` when permanent or out of tries."""
        error, permanent = failure
        dead = permanent or row["attempts"] >= params.max_attempts
        values: dict[str, Any] = {"claimed_by": None, "last_error": error[:2000]}
        if dead:
            values["status"] = "dead"
        else:
            values["status"] = "failed"
            values["next_attempt_at"] = now + backoff(row["attempts"], params)
        fenced = _fenced(notices.c.notice_id == row["notice_id"], self.worker)
        if self.conn.execute(update(notices).where(fenced).values(**values)).rowcount:
            stats.dead += dead
            stats.failed += not dead


def _send_one(
    channel: Channel,
    row: dict[str, Any],
    generator: Generator | None,
    links: LinkSigner | None,
    now: dt.datetime,
) -> bool | tuple[str, bool]:
    """Render and send one claimed row: the channel's answer, or (error, permanent)."""
    try:
        payload = with_links(row["payload"] or {}, row["customer_id"], links, now)
    except ValueError as exc:  # a link for an unknown purpose: no retry can fix the row
        return (f"bad data: {exc}", True)
    try:
        text_ = render(row["kind"], row["locale"], payload, generator)
        message = Message(
            notice_id=row["notice_id"],
            dedup_key=row["dedup_key"],
            customer_id=row["customer_id"],
            kind=row["kind"],
            locale=row["locale"],
            to=payload.get("email"),
            subject=text_.subject,
            body=text_.body,
            payload=payload,
        )
        return channel.send(message)
    except RenderError as exc:
        return (f"bad data: {exc}", True)
    except DeliveryError as exc:
        return (f"{exc.__class__.__name__}: {exc}", exc.permanent)
    except Exception as exc:  # an unexpected channel error is retried, with its reason
        return (f"{exc.__class__.__name__}: {exc}", False)


def make_worker_id() -> str:
    """A claim token unique to this delivery run."""
    return f"{socket.gethostname()[:24]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def deliver(
    engine: Engine,
    channel: Channel,
    params: NotifyParams,
    *,
    worker: str | None = None,
    clock: Clock = utcnow,
    generator: Generator | None = None,
    max_batches: int | None = None,
    on_sent: Callable[[dict[str, Any]], None] | None = None,
    links: LinkSigner | None = None,
) -> DeliveryStats:
    """Claim, render, send and mark each notice until none is due (or `max_batches` ran).

    Each message's outcome is committed as soon as the channel answers, so a sender killed
    mid-batch re-sends at most the one message it was marking.

    Args:
        engine: the store.
        channel: where to send; only notices enqueued for `channel.name` are claimed.
        params: the `notify` section (batch size, lease, max attempts, backoff).
        worker: claim token; a fresh one by default.
        clock: returns the current tz-aware time (tests move it forward to skip backoff).
        generator: optional wording personalisation (see `notify.render`).
        max_batches: stop after this many batches.
        on_sent: called after the channel accepted a message and before its outcome is
            recorded: the crash window (tests kill the process there).
        links: signs the self-serve links a notice names, at send time (`notify.links`).

    Returns:
        Counts of sent, already-delivered, failed (will retry) and dead notices.
    """
    worker = worker or make_worker_id()
    stats = DeliveryStats()
    with _marking(engine, worker) as marks:
        _deliver_batches(
            engine,
            marks,
            channel,
            params,
            worker,
            clock,
            generator,
            max_batches,
            on_sent,
            links,
            stats,
        )
    return stats


@contextmanager
def _marking(engine: Engine, worker: str) -> Iterator[_Marks]:
    """One autocommit connection for this run's marks: each mark is one statement, one commit,
    one round trip (no pool checkout, no BEGIN/COMMIT per message), so a mark is durable
    before the next message goes to the channel.

    On PostgreSQL its commits do not wait for the WAL flush (`synchronous_commit = off`), which
    keeps one commit per message close to one per batch; only a crash of the database server
    itself (not of a sender) could forget the marks of its last fraction of a second.
    """
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    pg = engine.dialect.name == "postgresql"
    try:
        if pg:
            conn.exec_driver_sql("SET synchronous_commit = off")
        marks = _Marks(conn, worker)
        try:
            yield marks
        finally:
            marks.close()
    finally:
        if pg:
            with contextlib.suppress(SQLAlchemyError):
                conn.exec_driver_sql("RESET synchronous_commit")
        conn.close()


def _deliver_batches(
    engine: Engine,
    marks: _Marks,
    channel: Channel,
    params: NotifyParams,
    worker: str,
    clock: Clock,
    generator: Generator | None,
    max_batches: int | None,
    on_sent: Callable[[dict[str, Any]], None] | None,
    links: LinkSigner | None,
    stats: DeliveryStats,
) -> None:
    while max_batches is None or stats.batches < max_batches:
        rows = claim(engine, channel.name, worker, params.batch_size, params.lease_seconds, clock())
        if not rows:
            break
        stats.batches += 1
        for row in rows:
            outcome = _send_one(channel, row, generator, links, clock())
            if isinstance(outcome, tuple):
                key = outcome[0].split(":", 1)[0]
                stats.errors[key] = stats.errors.get(key, 0) + 1
                marks.failed(row, outcome, params, clock(), stats)
                continue
            stats.sent += outcome
            stats.already_delivered += not outcome
            if on_sent is not None:
                on_sent(row)
            marks.sent(row, clock())


def outbox_counts(engine: Engine, cycle_dates: list[dt.date] | None = None) -> pd.DataFrame:
    """Notices by kind and status (optionally only those with the given cycle dates)."""
    c = notices.c
    stmt = select(c.kind, c.status, func.count().label("n")).group_by(c.kind, c.status)
    if cycle_dates:
        stmt = stmt.where(c.cycle_date.in_(cycle_dates))
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(stmt).mappings().all(), columns=["kind", "status", "n"])
