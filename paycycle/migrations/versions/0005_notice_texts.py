"""Personalised notice text: the model-answer cache and each notice's text source.

`generated_texts` caches a model's body per (prompt version, model, kind, locale, facts) hash;
`notice_texts` records, per notice dedup key, whether the delivered text came from the model, the
cache or the template, and why the template was used (`notify/personalise.py`).

Revision ID: 0005
Revises: 0004 (re-chained after 0004/0005 at merge)
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "generated_texts",
        sa.Column("cache_key", sa.String(length=64), nullable=False),
        sa.Column("prompt", sa.String(length=255), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("trace_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("cache_key", name=op.f("pk_generated_texts")),
    )
    op.create_table(
        "notice_texts",
        sa.Column("dedup_key", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("prompt", sa.String(length=255), nullable=True),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("cache_key", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("dedup_key", name=op.f("pk_notice_texts")),
    )


def downgrade() -> None:
    op.drop_table("notice_texts")
    op.drop_table("generated_texts")
