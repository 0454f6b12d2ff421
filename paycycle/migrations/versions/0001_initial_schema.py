"""Initial schema: the simulator's raw tables, the notices outbox and batch scores.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
NOW = sa.func.now()


def _id(name: str, **kw) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), autoincrement=False, nullable=False, **kw)


def _create(
    name: str,
    *items: sa.SchemaItem,
    fks: Sequence[tuple[str, str]] = (),
    indexes: Sequence[Sequence[str]] = (),
) -> None:
    """Create a table with its (column → parent table) foreign keys and plain indexes, named
    like `paycycle.store.NAMING`."""
    foreign = [
        sa.ForeignKeyConstraint([col], [f"{parent}.{col}"], name=op.f(f"fk_{name}_{col}_{parent}"))
        for col, parent in fks
    ]
    op.create_table(name, *items, *foreign)
    for cols in indexes:
        op.create_index(op.f(f"ix_{name}_{'_'.join(cols)}"), name, list(cols))


def upgrade() -> None:
    _create(
        "plans",
        _id("plan_id"),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("tier", sa.BigInteger(), nullable=False),
        sa.Column("monthly_price", sa.Double(), nullable=False),
        sa.Column("included_units", sa.BigInteger(), nullable=False),
        sa.Column("annual_price", sa.Double(), nullable=False),
        sa.Column("addons", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("plan_id", name=op.f("pk_plans")),
    )
    _create(
        "addons",
        _id("addon_id"),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("monthly_price", sa.Double(), nullable=False),
        sa.Column("signal", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("addon_id", name=op.f("pk_addons")),
    )
    _create(
        "customers",
        _id("customer_id"),
        sa.Column("signup_date", sa.Date(), nullable=False),
        sa.Column("country", sa.String(), nullable=False),
        sa.Column("currency", sa.String(), nullable=False),
        sa.Column("locale", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("acquisition_channel", sa.String(), nullable=False),
        sa.Column("segment", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customers")),
    )
    _create(
        "subscriptions",
        _id("subscription_id"),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("plan_id", sa.BigInteger(), nullable=False),
        sa.Column("cycle", sa.String(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("billing_day", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("next_charge_at", sa.Date(), nullable=True),
        sa.Column("renews_at", sa.Date(), nullable=True),
        sa.Column("cancelled_at", sa.Date(), nullable=True),
        sa.Column("addons", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_subscriptions")),
        fks=[("customer_id", "customers"), ("plan_id", "plans")],
        indexes=[("customer_id",), ("next_charge_at",)],
    )
    _create(
        "invoices",
        _id("invoice_id"),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("amount", sa.Double(), nullable=False),
        sa.Column("currency", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("paid_at", sa.Date(), nullable=True),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_invoices")),
        fks=[("customer_id", "customers"), ("subscription_id", "subscriptions")],
        indexes=[("customer_id",)],
    )
    _create(
        "payments",
        _id("payment_id"),
        sa.Column("invoice_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.BigInteger(), nullable=False),
        sa.Column("attempted_at", sa.Date(), nullable=False),
        sa.Column("amount", sa.Double(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("decline_code", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("payment_id", name=op.f("pk_payments")),
        fks=[("invoice_id", "invoices"), ("customer_id", "customers")],
        indexes=[("invoice_id",), ("customer_id",)],
    )
    _create(
        "usage",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        *[
            sa.Column(c, sa.BigInteger(), nullable=False)
            for c in (
                "units",
                "active_days",
                "included_units",
                "feat_storage_gb",
                "support_tickets",
                "feat_reports",
                "feat_api_calls",
                "feat_sms",
            )
        ],
        sa.PrimaryKeyConstraint("customer_id", "month", name=op.f("pk_usage")),
        fks=[("customer_id", "customers")],
    )
    _create(
        "offers",
        _id("offer_id"),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("offered_at", sa.Date(), nullable=False),
        sa.Column("offer_type", sa.String(), nullable=False),
        sa.Column("cost", sa.Double(), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("offer_id", name=op.f("pk_offers")),
        fks=[("customer_id", "customers")],
        indexes=[("customer_id",)],
    )
    _create(
        "adoptions",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("adopted_at", sa.Date(), nullable=False),
        sa.Column("item", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "adopted_at", "item", name=op.f("pk_adoptions")),
        fks=[("customer_id", "customers")],
    )
    _create(
        "notices",
        sa.Column(
            "notice_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("cycle_date", sa.Date(), nullable=False),
        sa.Column("dedup_key", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", TS, server_default=NOW, nullable=True),
        sa.Column("created_at", TS, server_default=NOW, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed', 'dead')",
            name=op.f("ck_notices_status"),
        ),
        sa.PrimaryKeyConstraint("notice_id", name=op.f("pk_notices")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_notices_dedup_key")),
        fks=[("customer_id", "customers"), ("subscription_id", "subscriptions")],
        indexes=[("customer_id",)],
    )
    op.create_index("ix_notices_status_next_attempt_at", "notices", ["status", "next_attempt_at"])
    _create(
        "scores",
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("churn_probability", sa.Double(), nullable=False),
        sa.Column("recommendations", JSON, nullable=True),
        sa.Column("churn_model_version", sa.String(length=64), nullable=False),
        sa.Column("recommender_model_version", sa.String(length=64), nullable=True),
        sa.Column("created_at", TS, server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "as_of", name=op.f("pk_scores")),
        fks=[("customer_id", "customers")],
    )


def downgrade() -> None:
    for name in (
        "scores",
        "notices",
        "adoptions",
        "offers",
        "usage",
        "payments",
        "invoices",
        "subscriptions",
        "customers",
        "addons",
        "plans",
    ):
        op.drop_table(name)
