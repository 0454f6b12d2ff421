"""Outbox claims and billing-monitor indexes.

`notices.claimed_by` / `claimed_at` record which delivery worker holds a row in 'sending' and
since when, so a row whose worker died is reclaimed after the lease and a late worker cannot mark
a row another worker re-claimed. The indexes serve the daily scans in `notify/cycles.py`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_payments_attempted_at", "payments", ["attempted_at"]),
    ("ix_subscriptions_billing_day", "subscriptions", ["billing_day"]),
    ("ix_subscriptions_start_date", "subscriptions", ["start_date"]),
    ("ix_notices_status_claimed_at", "notices", ["status", "claimed_at"]),
)


def upgrade() -> None:
    op.add_column("notices", sa.Column("claimed_by", sa.String(length=64), nullable=True))
    op.add_column("notices", sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
    for name, table, cols in INDEXES:
        op.create_index(name, table, cols)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("notices") as batch:
        batch.drop_column("claimed_at")
        batch.drop_column("claimed_by")
