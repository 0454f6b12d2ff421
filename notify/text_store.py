"""The store side of personalised notice text: the answer cache and each notice's text source.

`generated_texts` (migration 0005) caches a model's accepted body, or a guard rejection (text
NULL), by cache key; `notice_texts` records per dedup key whether the text came from the model,
the cache or the template, and why the template was used.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select

from paycycle.store import GeneratedText

if TYPE_CHECKING:
    from sqlalchemy import Engine

CHUNK = 1_000


def upsert(engine: Engine, model: Any, rows: list[dict[str, Any]], update: bool) -> None:
    if not rows:
        return
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = model.__table__
    key = [c.name for c in table.primary_key.columns]
    with engine.begin() as conn:
        for i in range(0, len(rows), CHUNK):
            stmt = insert(table)
            if update:
                cols = {c: stmt.excluded[c] for c in rows[0] if c not in key}
                stmt = stmt.on_conflict_do_update(index_elements=key, set_=cols)
            else:
                stmt = stmt.on_conflict_do_nothing(index_elements=key)
            conn.execute(stmt, rows[i : i + CHUNK])


def cached_texts(engine: Engine, keys: list[str]) -> dict[str, tuple[str | None, str | None]]:
    c = GeneratedText.__table__.c
    out = {}
    with engine.connect() as conn:
        for i in range(0, len(keys), CHUNK):
            stmt = select(c.cache_key, c.text, c.reason).where(c.cache_key.in_(keys[i : i + CHUNK]))
            out.update({k: (t, r) for k, t, r in conn.execute(stmt)})
    return out


def complete_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Same keys in every row (one executemany); a notice listed twice keeps its last row."""
    now = dt.datetime.now(dt.UTC)
    cols = ("source", "reason", "prompt", "model", "cache_key")
    merged = {r["dedup_key"]: {c: r.get(c) for c in cols} for r in records}
    return [{"dedup_key": k, **v, "updated_at": now} for k, v in merged.items()]


def due_rows(engine: Engine, channel: str) -> list[dict[str, Any]]:
    """Outbox rows of `channel` that a delivery run may send now (due, or claimed earlier)."""
    from notify.outbox import notices

    c = notices.c
    now = dt.datetime.now(dt.UTC)
    due = or_(
        and_(
            c.status.in_(("pending", "failed")),
            or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now),
        ),
        c.status == "sending",
    )
    stmt = select(c.dedup_key, c.kind, c.locale, c.payload).where(c.channel == channel, due)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]
