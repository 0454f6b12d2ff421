"""Retention: cards on file (expiry dates), converted trials, cancel-page intents.

`cards` and `trials` are raw tables the simulator writes (`paycycle/sim/retention.py`);
`cancel_intents` records each cancel-page visit with the offer shown and, 30 days later,
whether the customer was saved (`retention/saves.py`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, col: str, parent: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [col], [f"{parent}.{col}"], name=op.f(f"fk_{table}_{col}_{parent}")
    )


def upgrade() -> None:
    op.create_table(
        "cards",
        sa.Column("card_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("added_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("card_id", name=op.f("pk_cards")),
        _fk("cards", "customer_id", "customers"),
    )
    op.create_index(op.f("ix_cards_customer_id"), "cards", ["customer_id"])
    op.create_index(op.f("ix_cards_expires_on"), "cards", ["expires_on"])
    op.create_table(
        "trials",
        sa.Column("subscription_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("trial_start", sa.Date(), nullable=False),
        sa.Column("trial_end", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_trials")),
        _fk("trials", "subscription_id", "subscriptions"),
        _fk("trials", "customer_id", "customers"),
    )
    op.create_index(op.f("ix_trials_customer_id"), "trials", ["customer_id"])
    op.create_index(op.f("ix_trials_trial_end"), "trials", ["trial_end"])
    op.create_table(
        "cancel_intents",
        sa.Column(
            "intent_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("offer", sa.String(length=32), nullable=True),
        sa.Column("offer_months", sa.Integer(), nullable=True),
        sa.Column("expected_value", sa.Double(), nullable=True),
        sa.Column("holdout", sa.Boolean(), nullable=False),
        sa.Column("created_on", sa.Date(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("saved", sa.Boolean(), nullable=True),
        sa.Column("checked_on", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("intent_id", name=op.f("pk_cancel_intents")),
        _fk("cancel_intents", "customer_id", "customers"),
    )
    op.create_index(op.f("ix_cancel_intents_customer_id"), "cancel_intents", ["customer_id"])
    op.create_index(op.f("ix_cancel_intents_created_on"), "cancel_intents", ["created_on"])


def downgrade() -> None:
    for table in ("cancel_intents", "trials", "cards"):
        op.drop_table(table)
