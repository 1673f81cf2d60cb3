"""Networks whose signups were refused for coming too fast, kept for the author to see.

One row per network (an IPv4 /24 or an IPv6 /64): how many requests were refused, the
first and the last. A network throttled again after a quiet day starts a new count. Each
refusal is one short write that holds the row (an upsert), so counts from several
processes add up.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Integer, Select, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from publisher.store.engine import begin_write, reader
from publisher.store.schema import signup_throttles

__all__ = ["QUIET", "Throttled", "recent", "record"]

QUIET = timedelta(days=1)
"""A network refused nothing for this long starts a new count when refused again."""


@dataclass(frozen=True, slots=True)
class Throttled:
    """A network whose signups were refused: how many, first and last."""

    network: str
    refused: int
    first_at: datetime
    last_at: datetime


def record(engine: Engine, network: str, *, now: datetime) -> None:
    """Count one refused signup from `network`."""
    key = network[:64]
    with begin_write(engine) as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        added = conn.execute(
            dialect.insert(signup_throttles)
            .values(network=key, first_at=now, last_at=now, refused=1)
            .on_conflict_do_nothing(index_elements=["network"])
            .returning(signup_throttles.c.network)
        ).first()
        if added is not None:
            return
        row = conn.execute(
            select(signup_throttles.c.last_at, signup_throttles.c.refused)
            .where(signup_throttles.c.network == key)
            .with_for_update()
        ).one()
        values = (
            {"first_at": now, "last_at": now, "refused": 1}
            if now - row.last_at >= QUIET
            else {"last_at": max(now, row.last_at), "refused": row.refused + 1}
        )
        conn.execute(update(signup_throttles).where(signup_throttles.c.network == key).values(values))


def recent(engine: Engine, *, now: datetime, within: timedelta = QUIET, limit: int = 5) -> list[Throttled]:
    """Networks refused within `within` before `now`, the most refused first."""
    with reader(engine) as conn:
        rows = conn.execute(_recent_query(), {"since": now - within, "limit": limit}).all()
    return [Throttled(r.network, r.refused, r.first_at, r.last_at) for r in rows]


@functools.cache
def _recent_query() -> Select[Any]:
    """Built once: Home asks on every request."""
    return (
        select(signup_throttles)
        .where(signup_throttles.c.last_at > bindparam("since"))
        .order_by(signup_throttles.c.refused.desc(), signup_throttles.c.network)
        .limit(bindparam("limit", type_=Integer))
    )
