"""Reading back what happened: one person's data, and counts per day, per issue, per minute.

Counts are made from the two histories the store keeps anyway, `events` (who joined,
confirmed, left, bounced, complained) and `deliveries` (the ledger); nothing extra is
written to keep them. The database counts: days are grouped in SQL (`utc_day`, the same
on SQLite and PostgreSQL) over the index on (kind, created_at), so the desk's Home reads
a few hundred figures, not a row per subscriber. Only the reactions to an issue come back
as rows, one per unsubscribe, bounce or complaint since the issue, to be measured against
each reader's copy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, String, and_, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from publisher.store.schema import deliveries, events, issues

__all__ = [
    "AFTER_ISSUE",
    "REACTIONS",
    "DeliveryRecord",
    "EventRecord",
    "events_after_issue",
    "events_after_issues",
    "events_per_day",
    "history",
    "sent_per_minute",
]

AFTER_ISSUE = timedelta(days=7)
"""How long after a copy was sent its reader's unsubscribe, bounce or complaint counts for that issue."""
REACTIONS = ("unsubscribe", "bounce", "complaint")
"""The events that count against an issue."""
_READ = 1000


class utc_day(FunctionElement[str]):
    """The UTC calendar day of a timestamp column as "YYYY-MM-DD", on SQLite and PostgreSQL."""

    type = String()
    name = "utc_day"
    inherit_cache = True


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # schema.UTCDateTime stores UTC as "YYYY-MM-DD HH:MM:SS.ffffff": the day is its start.
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 10)"


@compiles(utc_day)
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


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


def events_per_day(
    engine: Engine, *, since: datetime, until: datetime, kinds: Iterable[str]
) -> dict[tuple[str, str], int]:
    """Events of `kinds` counted per (UTC day "YYYY-MM-DD", kind) for `since` <= created_at < `until`."""
    day = utc_day(events.c.created_at)
    query = (
        select(day, events.c.kind, func.count())
        .where(events.c.kind.in_(tuple(kinds)), events.c.created_at >= since, events.c.created_at < until)
        .group_by(day, events.c.kind)
    )
    with engine.connect() as conn:
        return {(str(found), str(kind)): int(number) for found, kind, number in conn.execute(query)}


def events_after_issue(engine: Engine, issue_id: int) -> dict[str, int]:
    """Unsubscribes, bounces and complaints by this issue's readers within AFTER_ISSUE of their copy."""
    return events_after_issues(engine, [issue_id]).get(issue_id, {})


def events_after_issues(engine: Engine, issue_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """`events_after_issue` for several issues at once: issue id -> kind -> count.

    Read from the reactions since the oldest of the issues (a copy is never sent before
    its issue is made; a day's margin allows for clocks), each matched to its reader's
    copy through the ledger's (issue, subscriber) key.
    """
    wanted = sorted(set(issue_ids))
    counted: dict[int, Counter[str]] = {}
    if not wanted:
        return {}
    with engine.connect() as conn:
        oldest = conn.execute(select(func.min(issues.c.created_at)).where(issues.c.id.in_(wanted))).scalar()
        if oldest is None:
            return {}
        query = (
            select(deliveries.c.issue_id, events.c.kind, events.c.created_at, deliveries.c.sent_at)
            .select_from(
                events.join(
                    deliveries,
                    and_(deliveries.c.subscriber_id == events.c.subscriber_id, deliveries.c.issue_id.in_(wanted)),
                )
            )
            .where(
                events.c.kind.in_(REACTIONS),
                events.c.created_at >= oldest - timedelta(days=1),
                deliveries.c.sent_at.is_not(None),
                events.c.created_at >= deliveries.c.sent_at,
            )
        )
        for issue_id, kind, created, sent in conn.execution_options(yield_per=_READ).execute(query):
            if created - sent <= AFTER_ISSUE:
                counted.setdefault(int(issue_id), Counter())[kind] += 1
    return {issue_id: dict(kinds) for issue_id, kinds in counted.items()}


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

