"""Rate budgets shared by every process of a publication: token buckets kept in the database.

`delivery.rate` is a limit on the publication, not on one process: several `publisher
worker` processes on one PostgreSQL database (or `publisher send` beside `serve` on
SQLite) draw from one bucket. Each reservation is one short write transaction that
refills the bucket for the time passed, takes the tokens, and says how long the caller
must wait before using them (a reservation may overdraw; later callers queue behind the
debt, in the order they reserved).

Time is Unix wall-clock seconds, passed in by the caller: processes on several hosts
share it as long as their clocks are synchronised (NTP), which a mail server's hosts
are. A clock that steps back only delays the refill; it never grants extra tokens.
"""

from __future__ import annotations

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite

from publisher.store.engine import begin_write
from publisher.store.schema import rate_budgets

__all__ = ["refund", "reserve", "take"]


def reserve(engine: Engine, name: str, count: int, *, rate: float, capacity: float, now: float) -> float:
    """Take `count` tokens from bucket `name`; the seconds to wait before using them."""
    if count <= 0:
        return 0.0
    with begin_write(engine) as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(rate_budgets)
            .values(name=name, tokens=capacity, stamp=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        row = conn.execute(
            select(rate_budgets.c.tokens, rate_budgets.c.stamp).where(rate_budgets.c.name == name).with_for_update()
        ).one()
        elapsed = max(0.0, now - row.stamp)
        tokens = min(capacity, row.tokens + elapsed * rate) - count
        conn.execute(
            update(rate_budgets).where(rate_budgets.c.name == name).values(tokens=tokens, stamp=max(row.stamp, now))
        )
    return 0.0 if tokens >= 0 else -tokens / rate


def refund(engine: Engine, name: str, count: int, *, capacity: float) -> None:
    """Give back tokens reserved but not used."""
    if count <= 0:
        return
    with begin_write(engine) as conn:
        row = conn.execute(
            select(rate_budgets.c.tokens).where(rate_budgets.c.name == name).with_for_update()
        ).one_or_none()
        if row is not None:
            conn.execute(
                update(rate_budgets)
                .where(rate_budgets.c.name == name)
                .values(tokens=min(capacity, row.tokens + count))
            )


def take(engine: Engine, name: str, wanted: int, *, rate: float, capacity: float, now: float) -> tuple[int, float]:
    """Take up to `wanted` tokens from bucket `name` without overdrawing it.

    Returns how many were granted and, when fewer than wanted, the seconds until the next
    token is there (for per-domain throttles: the rows over the budget wait for a later
    claim instead of holding their batch).
    """
    if wanted <= 0:
        return 0, 0.0
    with begin_write(engine) as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(rate_budgets)
            .values(name=name, tokens=capacity, stamp=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        row = conn.execute(
            select(rate_budgets.c.tokens, rate_budgets.c.stamp).where(rate_budgets.c.name == name).with_for_update()
        ).one()
        elapsed = max(0.0, now - row.stamp)
        tokens = min(capacity, row.tokens + elapsed * rate)
        granted = max(0, min(wanted, int(tokens)))
        tokens -= granted
        conn.execute(
            update(rate_budgets).where(rate_budgets.c.name == name).values(tokens=tokens, stamp=max(row.stamp, now))
        )
    wait = 0.0 if granted == wanted else max(0.0, 1.0 - tokens) / rate
    return granted, wait
