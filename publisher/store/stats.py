"""Reading back what happened: one person's data, and counts per day, per issue, per minute.

Counts are made from the two histories the store keeps anyway, `events` (who joined,
confirmed, left, bounced, complained) and `deliveries` (the ledger); nothing extra is
written to keep them. Only rows in the asked window are read, a page at a time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, select

from publisher.store.schema import deliveries, events, issues

__all__ = [
    "AFTER_ISSUE",
    "DeliveryRecord",
    "EventRecord",
    "events_after_issue",
    "events_per_day",
    "history",
    "sent_per_minute",
]

AFTER_ISSUE = timedelta(days=7)
"""How long after a copy was sent its reader's unsubscribe, bounce or complaint counts for that issue."""
_READ = 1000


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A change of one subscriber's status, as recorded."""

    kind: str
    provider: str
    detail: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One issue's copy for one subscriber, as the ledger holds it."""

    issue_id: int
    subject: str
    state: str
    attempts: int
    sent_at: datetime | None
    detail: str


def history(engine: Engine, subscriber_id: int, email: str) -> tuple[list[EventRecord], list[DeliveryRecord]]:
    """Every event about this subscriber (or their address) and every copy sent to them, oldest first."""
    mine = (events.c.subscriber_id == subscriber_id) | (events.c.email == email)
    with engine.connect() as conn:
        found = [
            EventRecord(kind=r.kind, provider=r.provider, detail=r.detail, created_at=r.created_at)
            for r in conn.execute(
                select(events.c.kind, events.c.provider, events.c.detail, events.c.created_at)
                .where(mine)
                .order_by(events.c.created_at, events.c.id)
            )
        ]
        copies = [
            DeliveryRecord(
                issue_id=r.issue_id, subject=r.subject, state=r.state, attempts=r.attempts,
                sent_at=r.sent_at, detail=r.detail,
            )
            for r in conn.execute(
                select(
                    deliveries.c.issue_id, issues.c.subject, deliveries.c.state, deliveries.c.attempts,
                    deliveries.c.sent_at, deliveries.c.detail,
                )
                .join(issues, issues.c.id == deliveries.c.issue_id)
                .where(deliveries.c.subscriber_id == subscriber_id)
                .order_by(deliveries.c.id)
            )
        ]
    return found, copies


def events_per_day(engine: Engine, *, since: datetime, until: datetime) -> dict[tuple[str, str], int]:
    """Events counted per (UTC day "YYYY-MM-DD", kind) for `since` <= created_at < `until`."""
    counted: Counter[tuple[str, str]] = Counter()
    query = select(events.c.kind, events.c.created_at).where(
        events.c.created_at >= since, events.c.created_at < until
    )
    with engine.connect() as conn:
        for kind, created in conn.execution_options(yield_per=_READ).execute(query):
            counted[(f"{created:%Y-%m-%d}", kind)] += 1
    return dict(counted)


def events_after_issue(engine: Engine, issue_id: int) -> dict[str, int]:
    """Unsubscribes, bounces and complaints by this issue's readers within AFTER_ISSUE of their copy."""
    query = (
        select(events.c.kind, events.c.created_at, deliveries.c.sent_at)
        .join(deliveries, and_(deliveries.c.subscriber_id == events.c.subscriber_id))
        .where(
            deliveries.c.issue_id == issue_id,
            deliveries.c.sent_at.is_not(None),
            events.c.kind.in_(("unsubscribe", "bounce", "complaint")),
            events.c.created_at >= deliveries.c.sent_at,
        )
    )
    counted: Counter[str] = Counter()
    with engine.connect() as conn:
        for kind, created, sent in conn.execution_options(yield_per=_READ).execute(query):
            if created - sent <= AFTER_ISSUE:
                counted[kind] += 1
    return dict(counted)


def sent_per_minute(engine: Engine, issue_id: int) -> dict[datetime, int]:
    """Copies of this issue sent per UTC minute, in time order."""
    query = select(deliveries.c.sent_at).where(
        deliveries.c.issue_id == issue_id, deliveries.c.sent_at.is_not(None)
    )
    counted: Counter[datetime] = Counter()
    with engine.connect() as conn:
        for (sent,) in conn.execution_options(yield_per=_READ).execute(query):
            counted[sent.replace(second=0, microsecond=0)] += 1
    return dict(sorted(counted.items()))

