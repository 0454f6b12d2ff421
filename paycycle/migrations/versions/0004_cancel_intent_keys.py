"""Idempotency keys of `POST /cancel-intent`: the answer given to each key, replayed on retries.

`cancel_intent_keys` holds, per `Idempotency-Key`, the customer, a SHA-256 of the request body and
the JSON answer; `retention.saves.record_intent_once` replays it for the same key and body within
24 hours and refuses the key with a different body.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cancel_intent_keys",
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_cancel_intent_keys")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.customer_id"],
            name=op.f("fk_cancel_intent_keys_customer_id_customers"),
        ),
    )
    op.create_index(op.f("ix_cancel_intent_keys_created_at"), "cancel_intent_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("cancel_intent_keys")
