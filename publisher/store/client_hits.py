"""Requests per client in fixed windows, kept in the database.

A limit kept in one process's memory is forgiven by a restart and multiplied by every
extra `publisher serve` process; in the database it holds across both. A client's row
counts the hits of its current window; rows of windows that have ended are removed as
new clients arrive, so the table holds at most one window's worth of clients.

A hit is one transaction that holds the client's row (SQLite's `BEGIN IMMEDIATE`,
PostgreSQL's `FOR UPDATE` after an `INSERT ... ON CONFLICT DO NOTHING`), so however many
requests of one client arrive at once, no more than the limit pass.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from publisher.store.engine import begin_write
from publisher.store.schema import client_hits

__all__ = ["hit"]


def hit(engine: Engine, client: str, *, now: datetime, limit: int, window: float) -> float:
    """Count one request of `client`; 0.0 when allowed, else seconds until its window ends."""
    key = client[:100]
    span = timedelta(seconds=window)
    with begin_write(engine) as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        added = conn.execute(
            dialect.insert(client_hits)
            .values(client=key, window_start=now, hits=1)
            .on_conflict_do_nothing(index_elements=["client"])
            .returning(client_hits.c.client)
        ).first()
        if added is not None:
            conn.execute(delete(client_hits).where(client_hits.c.window_start <= now - span))
            return 0.0
        row = conn.execute(
            select(client_hits.c.window_start, client_hits.c.hits)
            .where(client_hits.c.client == key)
            .with_for_update()
        ).one()
        # Only an ended window starts again: a request that read the clock a moment before
        # another opened this window counts in it (it took the lock after that one).
        if now - row.window_start >= span:
            conn.execute(
                update(client_hits).where(client_hits.c.client == key).values(window_start=now, hits=1)
            )
            return 0.0
        if row.hits >= limit:
            return float(max(1, math.ceil((row.window_start + span - now).total_seconds())))
        conn.execute(update(client_hits).where(client_hits.c.client == key).values(hits=row.hits + 1))
        return 0.0
