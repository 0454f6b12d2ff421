"""The subscription store: SQLAlchemy 2 models, engine/session helpers and Alembic migrations.

Raw tables mirror the Parquet the simulator writes (`paycycle/sim/simulator.py`), one column per
Parquet column with the same name: int64 → BIGINT, double → DOUBLE PRECISION, string → VARCHAR,
bool → BOOLEAN, and the contract's day-resolution timestamps → DATE. `notices` is the billing
monitor's outbox and `scores` holds batch scores. The schema is created by the Alembic revisions in
`paycycle/migrations` (`upgrade()`), never by `create_all`; bulk loading lives in
`paycycle/loader.py` (`load_raw`, `migrate_and_load`), which builds on this module (never the
other way round).

Nothing here connects at import: call `make_engine(settings.db_url)` from an entry point.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    create_engine,
    event,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

from paycycle import catalog

if TYPE_CHECKING:
    from paycycle.config import Settings

MIGRATIONS_PATH = Path(__file__).resolve().parent / "migrations"
RAW_LOAD_ORDER = catalog.RAW_TABLES  # parents before children (foreign keys)
NOTICE_STATUSES = ("pending", "sending", "sent", "failed", "dead")
# constraint names are fixed so that Alembic can alter them on every backend
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
Id = BigInteger
AutoId = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PKs only
Json = JSON().with_variant(JSONB(), "postgresql")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware timestamp: stored as UTC, returned aware on SQLite and Postgres alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass a timezone-aware value")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _fk(target: str, **kw: Any) -> Any:
    return mapped_column(Id, ForeignKey(target), **kw)


class Plan(Base):
    __tablename__ = "plans"
    plan_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String)
    tier: Mapped[int] = mapped_column(BigInteger)
    monthly_price: Mapped[float] = mapped_column(Double)
    included_units: Mapped[int] = mapped_column(BigInteger)
    annual_price: Mapped[float] = mapped_column(Double)
    addons: Mapped[str] = mapped_column(String)


class Addon(Base):
    __tablename__ = "addons"
    addon_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String)
    monthly_price: Mapped[float] = mapped_column(Double)
    signal: Mapped[str] = mapped_column(String)


class Customer(Base):
    __tablename__ = "customers"
    customer_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    signup_date: Mapped[dt.date] = mapped_column(Date)
    country: Mapped[str] = mapped_column(String)
    currency: Mapped[str] = mapped_column(String)
    locale: Mapped[str] = mapped_column(String)
    email: Mapped[str] = mapped_column(String)
    acquisition_channel: Mapped[str] = mapped_column(String)
    segment: Mapped[str] = mapped_column(String)


class Subscription(Base):
    __tablename__ = "subscriptions"
    subscription_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    customer_id: Mapped[int] = _fk("customers.customer_id", index=True)
    plan_id: Mapped[int] = _fk("plans.plan_id")
    cycle: Mapped[str] = mapped_column(String)
    start_date: Mapped[dt.date] = mapped_column(Date, index=True)
    billing_day: Mapped[int] = mapped_column(BigInteger, index=True)
    status: Mapped[str] = mapped_column(String)
    next_charge_at: Mapped[dt.date | None] = mapped_column(Date, index=True)
    renews_at: Mapped[dt.date | None] = mapped_column(Date)
    cancelled_at: Mapped[dt.date | None] = mapped_column(Date)
    addons: Mapped[str] = mapped_column(String)


class Invoice(Base):
    __tablename__ = "invoices"
    invoice_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    customer_id: Mapped[int] = _fk("customers.customer_id", index=True)
    subscription_id: Mapped[int] = _fk("subscriptions.subscription_id")
    period_start: Mapped[dt.date] = mapped_column(Date)
    due_date: Mapped[dt.date] = mapped_column(Date)
    amount: Mapped[float] = mapped_column(Double)
    currency: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    paid_at: Mapped[dt.date | None] = mapped_column(Date)
    attempts: Mapped[int] = mapped_column(BigInteger)


class Payment(Base):
    __tablename__ = "payments"
    payment_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    invoice_id: Mapped[int] = _fk("invoices.invoice_id", index=True)
    customer_id: Mapped[int] = _fk("customers.customer_id", index=True)
    attempt: Mapped[int] = mapped_column(BigInteger)
    attempted_at: Mapped[dt.date] = mapped_column(Date, index=True)
    amount: Mapped[float] = mapped_column(Double)
    status: Mapped[str] = mapped_column(String)
    decline_code: Mapped[str | None] = mapped_column(String)


class Usage(Base):
    __tablename__ = "usage"
    customer_id: Mapped[int] = _fk("customers.customer_id", primary_key=True)
    month: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    units: Mapped[int] = mapped_column(BigInteger)
    active_days: Mapped[int] = mapped_column(BigInteger)
    included_units: Mapped[int] = mapped_column(BigInteger)
    feat_storage_gb: Mapped[int] = mapped_column(BigInteger)
    support_tickets: Mapped[int] = mapped_column(BigInteger)
    feat_reports: Mapped[int] = mapped_column(BigInteger)
    feat_api_calls: Mapped[int] = mapped_column(BigInteger)
    feat_sms: Mapped[int] = mapped_column(BigInteger)


class Offer(Base):
    __tablename__ = "offers"
    offer_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    customer_id: Mapped[int] = _fk("customers.customer_id", index=True)
    offered_at: Mapped[dt.date] = mapped_column(Date)
    offer_type: Mapped[str] = mapped_column(String)
    cost: Mapped[float] = mapped_column(Double)
    accepted: Mapped[bool] = mapped_column(Boolean)


class Adoption(Base):
    __tablename__ = "adoptions"
    customer_id: Mapped[int] = _fk("customers.customer_id", primary_key=True)
    adopted_at: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    item: Mapped[str] = mapped_column(String, primary_key=True)
    kind: Mapped[str] = mapped_column(String)


class Notice(Base):
    """Outbox row: one notice per dedup key, claimed and delivered by `notify/`."""

    __tablename__ = "notices"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in NOTICE_STATUSES) + ")", name="status"
        ),
        Index("ix_notices_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_notices_status_claimed_at", "status", "claimed_at"),
    )
    notice_id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = _fk("customers.customer_id", index=True)
    subscription_id: Mapped[int | None] = _fk("subscriptions.subscription_id", nullable=True)
    kind: Mapped[str] = mapped_column(String(64))
    cycle_date: Mapped[dt.date] = mapped_column(Date)
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
    locale: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, default=_utcnow, server_default=func.now()
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=_utcnow, server_default=func.now()
    )
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # which delivery worker holds a 'sending' row and since when (migration 0002, notify/outbox)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Score(Base):
    """Batch scores: churn probability and recommendations per customer and date."""

    __tablename__ = "scores"
    customer_id: Mapped[int] = _fk("customers.customer_id", primary_key=True)
    as_of: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    churn_probability: Mapped[float] = mapped_column(Double)
    recommendations: Mapped[list[Any] | None] = mapped_column(Json)
    churn_model_version: Mapped[str] = mapped_column(String(64))
    recommender_model_version: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=_utcnow, server_default=func.now()
    )
    # migration 0006: joins the row to its realized outcome; null for rows scored before it
    prediction_id: Mapped[str | None] = mapped_column(String(32))


class Card(Base):
    """Payment cards on file (migration 0003); the current card is the latest `added_on`."""

    __tablename__ = "cards"
    card_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    customer_id: Mapped[int] = _fk("customers.customer_id", index=True)
    added_on: Mapped[dt.date] = mapped_column(Date)
    expires_on: Mapped[dt.date] = mapped_column(Date, index=True)


class Trial(Base):
    """Free trials that converted into the subscription on `trial_end` (migration 0003)."""

    __tablename__ = "trials"
    subscription_id: Mapped[int] = mapped_column(
        Id, ForeignKey("subscriptions.subscription_id"), primary_key=True, autoincrement=False
    )
    customer_id: Mapped[int] = _fk("customers.customer_id", index=True)
    trial_start: Mapped[dt.date] = mapped_column(Date)
    trial_end: Mapped[dt.date] = mapped_column(Date, index=True)


class CancelIntent(Base):
    """A cancel-page visit: stated reason, the offer shown and its outcome (migration 0003).

    `saved` is set by `retention.saves.check_saves` once 30 days have passed: true only when the
    customer's subscription is still live then.
    """

    __tablename__ = "cancel_intents"
    intent_id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = _fk("customers.customer_id", index=True)
    reason: Mapped[str] = mapped_column(String(32))
    offer: Mapped[str | None] = mapped_column(String(32))
    offer_months: Mapped[int | None] = mapped_column(Integer)
    expected_value: Mapped[float | None] = mapped_column(Double)
    holdout: Mapped[bool] = mapped_column(Boolean, default=False)
    created_on: Mapped[dt.date] = mapped_column(Date, index=True)
    outcome: Mapped[str] = mapped_column(String(16), default="pending")
    saved: Mapped[bool | None] = mapped_column(Boolean)
    checked_on: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=_utcnow, server_default=func.now()
    )


class CancelIntentKey(Base):
    """The answer given to a `POST /cancel-intent` sent with an `Idempotency-Key` (migration 0004).

    A retry with the same key and the same body within the replay window gets `response` again
    instead of recording a second visit; `request_hash` (SHA-256 of the canonical body) tells a
    retry from a different request reusing the key.
    """

    __tablename__ = "cancel_intent_keys"
    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer_id: Mapped[int] = _fk("customers.customer_id")
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class GeneratedText(Base):
    """Cache of model-written notice bodies (migration 0005, `notify/personalise.py`).

    `cache_key` hashes (prompt name and version, model, kind, locale, facts sent); `text` is None
    when the model's answer was refused by the guard (`reason`), so a re-run does not ask again.
    """

    __tablename__ = "generated_texts"
    cache_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    prompt: Mapped[str] = mapped_column(String(255))  # <name>/<version>
    model: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    trace_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=_utcnow, server_default=func.now()
    )


class NoticeText(Base):
    """Where each notice's text came from (migration 0005): `model`, `cache` or `template`, and
    for a template the reason the model's text was not used (timeout, guard verdict, ...)."""

    __tablename__ = "notice_texts"
    dedup_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    prompt: Mapped[str | None] = mapped_column(String(255))
    model: Mapped[str | None] = mapped_column(String(255))
    cache_key: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=_utcnow, server_default=func.now()
    )


class Rollout(Base):
    """A challenger's safe rollout (migration 0007): the state the driver (`training/rollout.py`)
    and every service worker (`serving/rollout.py`) share. `state` is running, rolled_back,
    aborted or promoted; `stage` indexes `rollout.stages`; `readings` holds the service's last
    guard readings (JSON), `timeline` the stages passed, `reason` why it ended."""

    __tablename__ = "rollouts"
    rollout_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(255))
    challenger_version: Mapped[str] = mapped_column(String(64))
    champion_version: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)
    stage: Mapped[int] = mapped_column(Integer, default=0)
    stage_started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_utcnow)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=_utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    readings: Mapped[dict[str, Any] | None] = mapped_column(Json)
    readings_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    timeline: Mapped[list[Any] | None] = mapped_column(Json)


RAW_MODELS: dict[str, type[Base]] = {
    m.__tablename__: m
    for m in (
        Plan, Addon, Customer, Subscription, Invoice, Payment, Usage, Offer, Adoption, Card, Trial
    )
}  # fmt: skip


# --- engines and sessions -------------------------------------------------------------------


def normalize_url(url: str) -> str:
    """Use psycopg 3 for bare `postgresql://` / `postgres://` URLs (psycopg2 is not installed)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    return make_url(normalize_url(url)).render_as_string(hide_password=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for the store: SQLite (foreign keys on, WAL) or PostgreSQL via psycopg 3.

    Args:
        url: SQLAlchemy URL, usually `settings.db_url`; for a SQLite file the parent folder is
            created.
        **kwargs: passed to `sqlalchemy.create_engine`.

    Returns:
        The engine; nothing is connected yet.
    """
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


# --- migrations -----------------------------------------------------------------------------


def _url_of(settings_or_url: Settings | str) -> str:
    return normalize_url(
        settings_or_url if isinstance(settings_or_url, str) else settings_or_url.db_url
    )


def alembic_config(settings_or_url: Settings | str) -> Any:
    """An Alembic `Config` for the in-package migrations, bound to the given database."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_PATH))
    cfg.attributes["url"] = _url_of(settings_or_url)
    return cfg


def head_revision() -> str:
    """The newest migration revision shipped with the package."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS_PATH)).get_current_head()
    assert head is not None
    return head


def current_revision(settings_or_url: Settings | str) -> str | None:
    """The revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    url = make_url(_url_of(settings_or_url))
    sqlite_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if sqlite_file and not Path(str(url.database)).exists():  # asking must not create the file
        return None
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(settings_or_url: Settings | str, revision: str = "head") -> str:
    """Migrate the database to `revision`; a database already there is left untouched.

    Args:
        settings_or_url: the settings (uses `db_url`) or a SQLAlchemy URL.
        revision: target revision.

    Returns:
        The revision the database is at afterwards.
    """
    from alembic import command

    url = _url_of(settings_or_url)
    if revision == "head" and current_revision(url) == head_revision():
        return head_revision()
    command.upgrade(alembic_config(url), revision)
    return current_revision(url) or ""
