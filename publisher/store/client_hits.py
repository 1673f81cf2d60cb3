"""Requests per client in fixed windows, kept in the database.

A limit kept in one process's memory is forgiven by a restart and multiplied by every
extra `publisher serve` process; in the database it holds across both. A client's row
counts the hits of its current window; rows of windows that have ended are removed as
new clients arrive, so the table holds at most one window's worth of clients.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update

from publisher.store.engine import begin_write
from publisher.store.schema import client_hits

__all__ = ["hit"]


def hit(engine: Engine, client: str, *, now: datetime, limit: int, window: float) -> float:
    """Count one request of `client`; 0.0 when allowed, else seconds until its window ends."""
    key = client[:100]
    span = timedelta(seconds=window)
    with begin_write(engine) as conn:
        row = conn.execute(
            select(client_hits.c.window_start, client_hits.c.hits).where(client_hits.c.client == key)
        ).first()
        if row is None:
            conn.execute(delete(client_hits).where(client_hits.c.window_start <= now - span))
            conn.execute(insert(client_hits).values(client=key, window_start=now, hits=1))
            return 0.0
        if now - row.window_start >= span or row.window_start > now:
            conn.execute(
                update(client_hits).where(client_hits.c.client == key).values(window_start=now, hits=1)
            )
            return 0.0
        if row.hits >= limit:
            return float(max(1, math.ceil((row.window_start + span - now).total_seconds())))
        conn.execute(update(client_hits).where(client_hits.c.client == key).values(hits=row.hits + 1))
        return 0.0
