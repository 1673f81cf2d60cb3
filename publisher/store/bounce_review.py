"""The bounce messages read from mail: each one once, its decision, and the review queue.

A row per message (`bounce_messages`), keyed by a hash of its Message-ID or of its bytes:
`record` inserts it or, when the same message was taken before (by this process or
another, at the same moment or a week ago), returns the row that is there, so one
message is one decision. The rows whose outcome is "review" and that nobody has decided
on yet are the desk's queue; `decide` settles one exactly once (two people pressing at
once: the second is told it was done). The bytes are kept up to `RAW_LIMIT`, enough to
read any bounce's report and the headers it quotes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Select, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from publisher.store.engine import reader
from publisher.store.schema import bounce_messages, deliveries

__all__ = [
    "RAW_LIMIT",
    "BounceMessage",
    "Copy",
    "copy_for_key",
    "decide",
    "find",
    "for_issue",
    "for_subscriber",
    "get",
    "latest_issue",
    "outcomes_for_issue",
    "pending",
    "pending_count",
    "record",
    "set_outcome",
    "soft_count",
]

RAW_LIMIT = 256 * 1024
"""Bytes of each message kept: a report and the headers it quotes fit many times over."""

_COLUMNS = [c for c in bounce_messages.c if c.name != "raw"]


@dataclass(frozen=True, slots=True)
class BounceMessage:
    """One message taken, what it was read as and what was done."""

    id: int
    key: str
    received_at: datetime
    source: str
    kind: str
    outcome: str
    address: str | None
    subscriber_id: int | None
    issue_id: int | None
    status: str
    detail: str
    size: int
    decided_at: datetime | None = None
    decision: str | None = None
    decided_by: str | None = None
    raw: bytes = b""
    """Empty unless asked for (`get(..., raw=True)`)."""


@dataclass(frozen=True, slots=True)
class Copy:
    """The ledger row a return path's key names: the issue and the reader it went to."""

    issue_id: int
    subscriber_id: int | None
    email: str


def _message(row: Any) -> BounceMessage:
    values = dict(row._mapping)
    values["raw"] = bytes(values.get("raw") or b"")
    return BounceMessage(**values)


def find(engine: Engine, key: str) -> BounceMessage | None:
    with engine.connect() as conn:
        row = conn.execute(select(*_COLUMNS).where(bounce_messages.c.key == key)).first()
    return None if row is None else _message(row)


def get(engine: Engine, message_id: int, *, raw: bool = False) -> BounceMessage | None:
    columns = [*_COLUMNS, bounce_messages.c.raw] if raw else _COLUMNS
    with engine.connect() as conn:
        row = conn.execute(select(*columns).where(bounce_messages.c.id == message_id)).first()
    return None if row is None else _message(row)


def record(engine: Engine, *, raw: bytes, **values: Any) -> tuple[BounceMessage, bool]:
    """Insert one message's row; (the row, True), or (the row already there, False)."""
    values["raw"] = raw[:RAW_LIMIT]
    try:
        with engine.begin() as conn:
            conn.execute(insert(bounce_messages).values(**values))
    except IntegrityError:
        existing = find(engine, str(values["key"]))
        if existing is None:
            raise
        return existing, False
    found = find(engine, str(values["key"]))
    assert found is not None
    return found, True


def set_outcome(engine: Engine, message_id: int, outcome: str, detail: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(bounce_messages).where(bounce_messages.c.id == message_id).values(outcome=outcome, detail=detail)
        )


def soft_count(engine: Engine, address: str, *, since: datetime) -> int:
    """Soft bounces counted for `address` from `since` on (this message's included): those
    taken as such, or decided so by a person; never a forged one."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    bounce_messages.c.address == address,
                    or_(
                        and_(bounce_messages.c.kind == "soft",
                             bounce_messages.c.outcome.in_(("counted", "suppressed"))),
                        bounce_messages.c.decision == "soft",
                    ),
                    bounce_messages.c.received_at >= since,
                )
            ).scalar_one()
        )


def copy_for_key(engine: Engine, message_key: str) -> Copy | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(deliveries.c.issue_id, deliveries.c.subscriber_id, deliveries.c.email)
            .where(deliveries.c.message_key == message_key)
            .limit(1)
        ).first()
    return None if row is None else Copy(int(row.issue_id), row.subscriber_id, str(row.email))


def pending(engine: Engine, *, limit: int = 100) -> list[BounceMessage]:
    """The review queue, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(*_COLUMNS)
            .where(bounce_messages.c.outcome == "review", bounce_messages.c.decided_at.is_(None))
            .order_by(bounce_messages.c.received_at, bounce_messages.c.id)
            .limit(limit)
        ).all()
    return [_message(r) for r in rows]


def pending_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(
                    bounce_messages.c.outcome == "review", bounce_messages.c.decided_at.is_(None)
                )
            ).scalar_one()
        )


def decide(engine: Engine, message_id: int, decision: str, *, who: str, now: datetime, outcome: str) -> bool:
    """Settle one message of the queue; False when it was settled already (or is not in it)."""
    with engine.begin() as conn:
        done = conn.execute(
            update(bounce_messages)
            .where(bounce_messages.c.id == message_id, bounce_messages.c.decided_at.is_(None))
            .values(decision=decision, decided_at=now, decided_by=who[:320], outcome=outcome)
        ).rowcount
    return bool(done)


def for_subscriber(
    engine: Engine, subscriber_id: int, address: str, *, limit: int = 50
) -> list[BounceMessage]:
    """A reader's messages, newest first: by their row, or by their address."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(*_COLUMNS)
            .where(or_(bounce_messages.c.subscriber_id == subscriber_id, bounce_messages.c.address == address))
            .order_by(bounce_messages.c.received_at.desc(), bounce_messages.c.id.desc())
            .limit(limit)
        ).all()
    return [_message(r) for r in rows]


def for_issue(engine: Engine, issue_id: int, *, limit: int = 200) -> Sequence[BounceMessage]:
    """The messages that answered one issue, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(*_COLUMNS)
            .where(bounce_messages.c.issue_id == issue_id)
            .order_by(bounce_messages.c.received_at.desc(), bounce_messages.c.id.desc())
            .limit(limit)
        ).all()
    return [_message(r) for r in rows]


def latest_issue(engine: Engine, subscriber_id: int, *, now: datetime, within: timedelta) -> int | None:
    """The issue of the reader's latest copy sent within `within` before `now` (what a
    report that names only an address answers; see store.subscribers.issue_for_event)."""
    with engine.connect() as conn:
        found = conn.execute(
            select(deliveries.c.issue_id)
            .where(
                deliveries.c.subscriber_id == subscriber_id,
                deliveries.c.sent_at.is_not(None),
                deliveries.c.sent_at <= now,
                deliveries.c.sent_at >= now - within,
            )
            .order_by(deliveries.c.sent_at.desc(), deliveries.c.id.desc())
            .limit(1)
        ).scalar()
    return None if found is None else int(found)


def outcomes_for_issue(engine: Engine, issue_id: int) -> dict[str, int]:
    """How many messages that answered one issue ended as each outcome."""
    with reader(engine) as conn:
        rows = conn.execute(_outcomes_query(), {"issue_id": issue_id}).all()
    return {str(outcome): int(count) for outcome, count in rows}


@functools.cache
def _outcomes_query() -> Select[Any]:
    """Built once: an issue's report asks on every request."""
    return (
        select(bounce_messages.c.outcome, func.count())
        .where(bounce_messages.c.issue_id == bindparam("issue_id"))
        .group_by(bounce_messages.c.outcome)
    )
