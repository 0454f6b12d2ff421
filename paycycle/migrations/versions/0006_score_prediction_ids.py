"""Batch scores carry a prediction id (`inference.prediction_ids`), so monitoring can join each
batch prediction to its realized outcome the way it joins a served one from the request log.

Rows scored before this revision keep a null id: they are still joined to outcomes by
(customer_id, as_of), which is the table's key; nothing is rewritten or lost.

Revision ID: 0006
Revises: 0005 (another branch also revises 0005; re-chain at merge)
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scores") as batch:
        batch.add_column(sa.Column("prediction_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scores") as batch:
        batch.drop_column("prediction_id")
