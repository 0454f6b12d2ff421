"""Safe rollouts: one row per challenger rollout, shared by the driver and the service.

`paycycle rollout start` inserts a running row; the service reads it every `rollout.poll_s`,
routes shadow or canary traffic to the challenger and writes its guard readings (or the breach
that rolled it back); the driver moves `stage` forward after each baking period and marks it
promoted when the last stage passed (`paycycle.store.Rollout`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("rollout_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("challenger_version", sa.String(length=64), nullable=False),
        sa.Column("champion_version", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("stage_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("readings", JSON, nullable=True),
        sa.Column("readings_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("timeline", JSON, nullable=True),
        sa.PrimaryKeyConstraint("rollout_id", name=op.f("pk_rollouts")),
    )
    op.create_index(op.f("ix_rollouts_state"), "rollouts", ["state"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rollouts_state"), table_name="rollouts")
    op.drop_table("rollouts")
