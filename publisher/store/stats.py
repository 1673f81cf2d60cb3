"""Reading back what happened: one person's data, and counts per day, per issue, per minute.

Counts are made from the two histories the store keeps anyway, `events` (who joined,
confirmed, left, bounced, complained) and `deliveries` (the ledger). Events per day are
kept ready in `event_days` by the database's triggers, in the transaction that writes
or erases an event (migration 0027), so the desk's Home reads a few hundred figures
whether the list holds a thousand readers or a million. The reactions to an issue are the
events recorded with its id (`events.issue_id`): each unsubscribe, bounce or complaint
counts for one issue at most, never for every issue its reader had before.

The complaint rate over a window (`accepted_and_complaints`) is complaints recorded in it
over copies the provider accepted in it; an owner's choice to send despite a high rate is
an event of its own kind (OVERRIDE, no subscriber), kept beside the complaints it answers.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Integer, Select, bindparam, case, func, insert, select

from publisher.store.counts_kept import fold, kept_on
from publisher.store.engine import reader, written_in
from publisher.store.folding import now_and_then
from publisher.store.schema import (
    deliveries,
    event_day_changes,
    event_days,
    events,
    issues,
    sent_minute_changes,
    sent_minutes,
)

__all__ = [
    "OVERRIDE",
    "REACTIONS",
    "DeliveryRecord",
    "EventRecord",
    "Override",
    "Reaction",
    "accepted_and_complaints",
    "events_per_day",
    "history",
    "overrides",
    "reactions",
    "reactions_to_issue",
    "record_override",
    "sent_per_minute",
]

REACTIONS = ("unsubscribe", "bounce", "complaint")
"""The events that count against an issue."""
OVERRIDE = "complaint_override"
"""The event kind of a send its owner started despite the complaint rate."""
_SHOWN = 200
"""Events of each kind listed for an issue; the counts cover them all."""


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
    """Events of `kinds` counted per (UTC day "YYYY-MM-DD", kind) on the UTC days from
    `since`'s to the one before `until`'s (both whole days, as the desk and the API ask).

    Read from `event_days`, which the database keeps in the transaction of every event
    written or erased (migration 0027): a row per day and kind, however many readers.
    """
    first = since.astimezone(UTC).strftime("%Y-%m-%d")
    last = until.astimezone(UTC).strftime("%Y-%m-%d")
    now_and_then(engine, fold)
    query = _days_query(engine.dialect.name, tuple(kinds))
    with reader(engine) as conn:
        return {
            (str(day), str(kind)): int(number)
            for day, kind, number in conn.execute(query, {"first": first, "last": last})
        }


# The statements Home and an issue's report read on every request are built once per
# dialect, their values bound at each call: building and keying a statement cost several
# times what running it on a few kept rows does.


@functools.lru_cache(maxsize=16)
def _days_query(dialect: str, kinds: tuple[str, ...]) -> Select[Any]:
    table = kept_on(dialect, event_days, event_day_changes)
    return select(table.c.day, table.c.kind, table.c.number).where(
        table.c.kind.in_(written_in(kinds)), table.c.day >= bindparam("first"),
        table.c.day < bindparam("last"), table.c.number > 0,
    )


def reactions(engine: Engine, issue_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Readers who unsubscribed, bounced or complained, per issue: issue id -> kind -> count.

    An event names its issue when it is recorded (`store.subscribers.issue_for_event`): an
    unsubscribe, only when it came by a link in that issue's message. Each reader counts
    once per kind, however many events they have (two one-click POSTs racing, a provider
    reporting a bounce twice). Counted by the database over the index on (issue_id, kind).
    """
    wanted = sorted(set(issue_ids))
    if not wanted:
        return {}
    counted: dict[int, dict[str, int]] = {}
    with reader(engine) as conn:
        for issue_id, kind, number in conn.execute(_reactions_query(), {"ids": wanted}):
            counted.setdefault(int(issue_id), {})[str(kind)] = int(number)
    return counted


@functools.cache
def _reactions_query() -> Select[Any]:
    return (
        select(events.c.issue_id, events.c.kind, func.count(func.distinct(events.c.email)))
        .where(events.c.issue_id.in_(bindparam("ids", expanding=True)), events.c.kind.in_(written_in(REACTIONS)))
        .group_by(events.c.issue_id, events.c.kind)
    )


@dataclass(frozen=True, slots=True)
class Reaction:
    """One reader's unsubscribe, bounce or complaint, as recorded for an issue."""

    kind: str
    email: str
    provider: str
    detail: str
    created_at: datetime


def reactions_to_issue(engine: Engine, issue_id: int, *, limit: int = _SHOWN) -> list[Reaction]:
    """The events recorded for one issue, oldest first, at most `limit` of each kind; a
    reader's later events of a kind they already have are left out, as `reactions` counts."""
    with reader(engine) as conn:
        return [
            Reaction(kind=r.kind, email=r.email, provider=r.provider, detail=r.detail, created_at=r.created_at)
            for r in conn.execute(_first_reactions(), {"issue_id": issue_id, "limit": limit})
        ]


@functools.cache
def _first_reactions() -> Select[Any]:
    """Every kind in one statement (a report asks for all three): each reader's first
    event of a kind, numbered within the kind in time order, the first `limit` kept; in
    REACTIONS' order of kinds."""
    first = (
        select(func.min(events.c.id))
        .where(
            events.c.issue_id == bindparam("issue_id"),
            events.c.kind.in_(written_in(REACTIONS)),
        )
        .group_by(events.c.kind, events.c.email)
    )
    ranked = (
        select(
            events.c.kind, events.c.email, events.c.provider, events.c.detail, events.c.created_at, events.c.id,
            func.row_number()
            .over(partition_by=events.c.kind, order_by=(events.c.created_at, events.c.id))
            .label("place"),
        )
        .where(events.c.id.in_(first))
        .subquery()
    )
    kind_order = case({kind: n for n, kind in enumerate(REACTIONS)}, value=ranked.c.kind)
    return (
        select(ranked.c.kind, ranked.c.email, ranked.c.provider, ranked.c.detail, ranked.c.created_at)
        .where(ranked.c.place <= bindparam("limit", type_=Integer))
        .order_by(kind_order, ranked.c.created_at, ranked.c.id)
    )


def sent_per_minute(engine: Engine, issue_id: int) -> dict[datetime, int]:
    """Copies of this issue sent per UTC minute, in time order.

    Read from `sent_minutes`, which the database keeps as each copy is marked sent
    (migration 0027): a send to a million readers is a few hundred rows to read, not a
    million timestamps.
    """
    now_and_then(engine, fold)
    with reader(engine) as conn:
        return {
            datetime.fromisoformat(text).replace(tzinfo=UTC): int(count)
            for text, count in conn.execute(_minutes_query(engine.dialect.name), {"issue_id": issue_id})
        }


@functools.cache
def _minutes_query(dialect: str) -> Select[Any]:
    table = kept_on(dialect, sent_minutes, sent_minute_changes)
    return (
        select(table.c.minute, table.c.number)
        .where(table.c.issue_id == bindparam("issue_id"), table.c.number > 0)
        .order_by(table.c.minute)
    )


def accepted_and_complaints(engine: Engine, *, since: datetime, until: datetime) -> tuple[int, int]:
    """(copies the provider accepted, readers who complained) for `since` <= time < `until`.

    Copies are counted in whole UTC minutes from `sent_minutes` (kept by the database as
    each copy is marked sent, migration 0027): the minutes from `since`'s to `until`'s,
    both whole, so 30 days read at most a row per minute that sent anything, however many
    copies went out. A reader who complained twice in the window counts once; complaints
    are counted over the events' index on (kind, created_at)."""
    now_and_then(engine, fold)
    values = {"first": _minute(since), "last": _minute(until), "since": since, "until": until}
    with reader(engine) as conn:
        accepted, complained = conn.execute(_window_query(engine.dialect.name), values).one()
    return int(accepted), int(complained)


@functools.cache
def _window_query(dialect: str) -> Select[Any]:
    """Both figures in one statement (Home asks on every look): a round trip, not two."""
    table = kept_on(dialect, sent_minutes, sent_minute_changes)
    accepted = select(func.coalesce(func.sum(table.c.number), 0)).where(
        table.c.minute >= bindparam("first"), table.c.minute <= bindparam("last")
    )
    complained = select(func.count(func.distinct(events.c.email))).where(
        events.c.kind == "complaint", events.c.created_at >= bindparam("since"),
        events.c.created_at < bindparam("until"),
    )
    return select(accepted.scalar_subquery().label("accepted"), complained.scalar_subquery().label("complained"))


def _minute(moment: datetime) -> str:
    """The UTC minute of `moment` as `sent_minutes` keys it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def record_override(engine: Engine, *, issue_id: int, who: str, detail: str, now: datetime) -> None:
    """Keep that `who` sent (or scheduled) issue `issue_id` despite the complaint rate, and why it was high."""
    with engine.begin() as conn:
        conn.execute(insert(events).values(
            subscriber_id=None, email=who[:320], kind=OVERRIDE, provider="", detail=detail, created_at=now,
            issue_id=issue_id,
        ))


@dataclass(frozen=True, slots=True)
class Override:
    """An owner's send despite the complaint rate: who, what the rate was, when."""

    who: str
    detail: str
    created_at: datetime


def overrides(engine: Engine, issue_id: int) -> list[Override]:
    """The overrides recorded for an issue, oldest first."""
    with reader(engine) as conn:
        return [
            Override(who=r.email, detail=r.detail, created_at=r.created_at)
            for r in conn.execute(_overrides_query(), {"issue_id": issue_id})
        ]


@functools.cache
def _overrides_query() -> Select[Any]:
    return (
        select(events.c.email, events.c.detail, events.c.created_at)
        .where(events.c.issue_id == bindparam("issue_id"), events.c.kind == OVERRIDE)
        .order_by(events.c.created_at, events.c.id)
    )
