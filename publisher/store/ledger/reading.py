"""Reading the ledger a page at a time: who an issue went to, and what one reader received.

Every page is a keyset page on the ledger row's id, never an offset and never a count,
so the thousandth page of a million-reader issue costs what the first does:

- An issue's copies in some states are read as one short index range per state on
  `(issue_id, state, id)` (migration 0035), each stopped at the page's length, merged by
  id: a page reads at most `limit + 1` entries per state, however many copies there are.
- A search by a part of the address reads at most `SEARCH_SPAN` copies from the cursor on
  and says how far it looked (`looked_to`), as the desk's Subscribers search does: the
  caller offers to look further from there.
- The copies whose reader bounced, complained or left by this message's link are read
  from the events recorded for the issue (`events.issue_id`, few beside the copies),
  joined to their ledger rows by `(issue_id, subscriber_id)`.

A reader's copies are few (one an issue), read newest first by their own index.

An erased reader's copies stay, emptied of the person: `subscriber_id` None, address "".
Their events went with them, so such a copy shows no reaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, func, select, union_all

from publisher.store.engine import reader, written_in
from publisher.store.ledger.rows import FAILED, HELD, QUEUED, RETRY, SENDING, SENT, SKIPPED
from publisher.store.schema import deliveries, events, issues
from publisher.store.stats import REACTIONS

__all__ = ["SEARCH_SPAN", "STATES", "Copy", "CopyReaction", "copies_for_reader", "copies_of_issue"]

STATES = (QUEUED, HELD, SENDING, SENT, RETRY, FAILED, SKIPPED)
"""Every state a ledger row can be in."""
SEARCH_SPAN = 5000
"""Copies a search reads from its cursor before it stops and says how far it looked."""


@dataclass(frozen=True, slots=True)
class CopyReaction:
    """A bounce, complaint or unsubscribe recorded against the issue this copy carried."""

    kind: str
    provider: str
    detail: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Copy:
    """One reader's copy of one issue, as the ledger holds it."""

    id: int
    """The ledger row's id: the cursor of every page."""
    issue_id: int
    subscriber_id: int | None
    """None once the reader was erased."""
    email: str
    """"" once the reader was erased."""
    state: str
    attempts: int
    not_before: datetime
    sent_at: datetime | None
    detail: str
    uncertain: bool = False
    """It was in flight when a sender stopped: the reader may have it twice."""
    subject: str = ""
    """The issue's subject (a reader's copies only)."""
    reactions: tuple[CopyReaction, ...] = ()

    @property
    def erased(self) -> bool:
        return self.subscriber_id is None


_COLUMNS = (
    deliveries.c.id,
    deliveries.c.issue_id,
    deliveries.c.subscriber_id,
    deliveries.c.email,
    deliveries.c.state,
    deliveries.c.attempts,
    deliveries.c.not_before,
    deliveries.c.sent_at,
    deliveries.c.detail,
    deliveries.c.uncertain,
)


def _ids_in_states(issue_id: int, states: Sequence[str], after: int, limit: int) -> Select[Any]:
    """The first `limit` row ids of the issue after `after` in `states`, in id order: one
    index range per state, each stopped at `limit` (a single `state IN (...)` range would
    have to sort every copy of the issue by id)."""
    branches = []
    for state in states:
        branch = (
            select(deliveries.c.id.label("id"))
            .where(deliveries.c.issue_id == issue_id, deliveries.c.state == state, deliveries.c.id > after)
            .order_by(deliveries.c.id)
            .limit(limit)
            .subquery()
        )
        branches.append(select(branch.c.id))
    merged = union_all(*branches).subquery()
    return select(merged.c.id).order_by(merged.c.id).limit(limit)


def copies_of_issue(
    engine: Engine,
    issue_id: int,
    *,
    states: Sequence[str] = STATES,
    reaction: str | None = None,
    search: str = "",
    after: int = 0,
    limit: int = 50,
) -> tuple[list[Copy], bool, int | None]:
    """A page of the issue's copies after the row id `after`, in id order, each with the
    reactions recorded for it: copies in `states`, or with `reaction` (a kind of REACTIONS)
    the copies whose reader had that reaction to this issue; `search`, a part of the address.

    Returns (copies, more, looked_to): `looked_to` is the last row id a search read when it
    stopped after SEARCH_SPAN copies without filling the page (the next search starts
    there), None when it read to the end or filled the page.
    """
    found: Select[Any] = select(*_COLUMNS)
    looked_to: int | None = None
    with reader(engine) as conn:
        if reaction is not None:
            reacted = (
                select(events.c.subscriber_id)
                .where(events.c.issue_id == issue_id, events.c.kind.in_(written_in([reaction])))
                .distinct()
                .subquery()
            )
            found = found.join(reacted, reacted.c.subscriber_id == deliveries.c.subscriber_id).where(
                deliveries.c.issue_id == issue_id, deliveries.c.id > after
            )
            if search:
                found = found.where(deliveries.c.email.contains(search.lower(), autoescape=True))
        elif search:
            window = _ids_in_states(issue_id, states, after, SEARCH_SPAN).subquery()
            read, last = conn.execute(select(func.count(), func.max(window.c.id))).one()
            if read == SEARCH_SPAN:
                looked_to = int(last)
            found = found.where(
                deliveries.c.id.in_(select(window.c.id)),
                deliveries.c.email.contains(search.lower(), autoescape=True),
            )
        else:
            found = found.where(deliveries.c.id.in_(_ids_in_states(issue_id, states, after, limit + 1)))
        rows = conn.execute(found.order_by(deliveries.c.id).limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        if more:
            looked_to = None  # the page is full: the next one starts after its last copy
        people = [r.subscriber_id for r in rows if r.subscriber_id is not None]
        reactions = _reactions(conn, [issue_id], people)
    copies = [_copy(r, reactions.get((issue_id, r.subscriber_id), ())) for r in rows]
    return copies, more or looked_to is not None, looked_to


def copies_for_reader(
    engine: Engine, subscriber_id: int, *, before: int | None = None, limit: int = 50
) -> tuple[list[Copy], bool]:
    """A page of the reader's copies before the row id `before`, newest first (the order
    they were queued in), each with its issue's subject and the reactions recorded for it.
    Returns (copies, more)."""
    query = (
        select(*_COLUMNS, issues.c.subject)
        .join(issues, issues.c.id == deliveries.c.issue_id)
        .where(deliveries.c.subscriber_id == subscriber_id)
    )
    if before is not None:
        query = query.where(deliveries.c.id < before)
    with reader(engine) as conn:
        rows = conn.execute(query.order_by(deliveries.c.id.desc()).limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        reactions = _reactions(conn, sorted({r.issue_id for r in rows}), [subscriber_id])
    copies = [_copy(r, reactions.get((r.issue_id, subscriber_id), ()), subject=r.subject) for r in rows]
    return copies, more


def _reactions(
    conn: Any, issue_ids: Sequence[int], subscriber_ids: Sequence[int]
) -> dict[tuple[int, int], tuple[CopyReaction, ...]]:
    """The reactions of these readers to these issues, keyed (issue, reader), each reader's
    first of a kind only (a provider may report a bounce twice)."""
    if not issue_ids or not subscriber_ids:
        return {}
    rows = conn.execute(
        select(
            events.c.issue_id,
            events.c.subscriber_id,
            events.c.kind,
            events.c.provider,
            events.c.detail,
            events.c.created_at,
        )
        .where(
            events.c.issue_id.in_(issue_ids),
            events.c.subscriber_id.in_(subscriber_ids),
            events.c.kind.in_(written_in(REACTIONS)),
        )
        .order_by(events.c.id)
    )
    found: dict[tuple[int, int], dict[str, CopyReaction]] = {}
    for r in rows:
        kinds = found.setdefault((int(r.issue_id), int(r.subscriber_id)), {})
        kinds.setdefault(
            r.kind, CopyReaction(kind=r.kind, provider=r.provider, detail=r.detail, created_at=r.created_at)
        )
    return {key: tuple(kinds.values()) for key, kinds in found.items()}


def _copy(row: Any, reactions: tuple[CopyReaction, ...], *, subject: str = "") -> Copy:
    return Copy(
        id=row.id,
        issue_id=row.issue_id,
        subscriber_id=row.subscriber_id,
        email=row.email,
        state=row.state,
        attempts=row.attempts,
        not_before=row.not_before,
        sent_at=row.sent_at,
        detail=row.detail,
        uncertain=bool(row.uncertain),
        subject=subject,
        reactions=reactions,
    )
