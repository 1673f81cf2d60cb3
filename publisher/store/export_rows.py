"""The ledger as a publication's export carries it, and put back into another store.

Reading streams: issues are few, deliveries are one row per reader per issue and are
read a page at a time. Writing back is idempotent, so an import stopped half-way and run
again adds only what is missing: an issue is known by its key, a delivery by its
Message-ID key (or, for a row without one, by its issue and address). A delivery comes
back attached to the subscriber with its address here; a row whose reader was erased
(no address) comes back emptied of them, as it left. A reader's own choices (every
article or the digest, their topics) and the key their links carry come back by address,
so that the links in mail already sent keep reaching the same person. Events (joined,
confirmed, left, bounced, complained) come back with the issue they answer, so each
issue's figures and each reader's history are what they were.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, or_, select, update

from publisher.store.engine import begin_write
from publisher.store.schema import deliveries, events, issues, subscribers

__all__ = [
    "Choice",
    "DeliveryRow",
    "EventRow",
    "IssueRow",
    "Put",
    "PutChoices",
    "iter_choices",
    "iter_deliveries",
    "iter_events",
    "list_issues",
    "put_choices",
    "put_events",
    "put_issue",
]

PAGE = 2000


@dataclass(frozen=True, slots=True)
class IssueRow:
    """An issue's row, snapshot included (what every copy of it carried)."""

    id: int
    key: str
    kind: str
    slug: str
    subject: str
    html: str
    text: str
    tag: str | None
    status: str
    topics: str
    created_at: datetime
    enqueued_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One reader's copy of one issue, as far as the ledger knows it."""

    issue_id: int
    email: str
    name: str
    state: str
    attempts: int
    sent_at: datetime | None
    message_key: str
    uncertain: bool
    detail: str


def list_issues(engine: Engine) -> list[IssueRow]:
    """Every issue, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(issues).order_by(issues.c.id)).all()
    return [
        IssueRow(
            id=r.id, key=r.key, kind=r.kind, slug=r.slug, subject=r.subject, html=r.html, text=r.text,
            tag=r.tag, status=r.status, topics=r.topics or "", created_at=r.created_at,
            enqueued_at=r.enqueued_at, finished_at=r.finished_at,
        )
        for r in rows
    ]


def iter_deliveries(engine: Engine) -> Iterator[DeliveryRow]:
    """Every delivery row, issue by issue (each issue's in id order), a page at a time."""
    after_issue, after_id = 0, 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(deliveries)
                .where(or_(deliveries.c.issue_id > after_issue,
                           and_(deliveries.c.issue_id == after_issue, deliveries.c.id > after_id)))
                .order_by(deliveries.c.issue_id, deliveries.c.id)
                .limit(PAGE)
            ).all()
        if not rows:
            return
        for r in rows:
            yield DeliveryRow(
                issue_id=r.issue_id, email=r.email, name=r.name, state=r.state, attempts=r.attempts,
                sent_at=r.sent_at, message_key=r.message_key, uncertain=bool(r.uncertain), detail=r.detail,
            )
        after_issue, after_id = rows[-1].issue_id, rows[-1].id


def find_issue_id(engine: Engine, key: str) -> int | None:
    with engine.connect() as conn:
        found = conn.execute(select(issues.c.id).where(issues.c.key == key)).scalar()
    return int(found) if found is not None else None


@dataclass(frozen=True, slots=True)
class Put:
    """What `put_issue` did (or, not writing, would do) with one issue and its copies."""

    issue_id: int | None
    """None when not writing and the issue is not here yet."""
    created: bool
    added: int
    seen: int


def put_issue(
    engine: Engine, row: IssueRow, copies: Sequence[DeliveryRow], *, now: datetime, write: bool = True
) -> Put:
    """The issue `row` (known by its key) and its `copies`, in one transaction: an import
    killed in between leaves no issue without the readers who had it, which a send would
    then mail again.

    An issue already here keeps its own snapshot and times; only copies it lacks are added.
    Each copy is matched to the subscriber with its address here (none: the copy keeps
    its address and no subscriber, as a reader's copy before they were erased).
    """
    with (begin_write(engine) if write else engine.connect()) as conn:
        found = conn.execute(select(issues.c.id).where(issues.c.key == row.key)).scalar()
        issue_id = int(found) if found is not None else None
        if issue_id is None and write:
            result = conn.execute(
                insert(issues).values(
                    key=row.key, kind=row.kind, slug=row.slug, subject=row.subject, html=row.html, text=row.text,
                    tag=row.tag, status=row.status, topics=row.topics or None, created_at=row.created_at,
                    enqueued_at=row.enqueued_at, finished_at=row.finished_at,
                )
            )
            key = result.inserted_primary_key
            assert key is not None
            issue_id = int(key[0])
        if issue_id is None:  # a plan, for an issue not here yet: every copy is new
            added = len(copies)
        else:
            new = _new_copies(conn, issue_id, copies, now)
            if write and new:
                conn.execute(insert(deliveries), [{**values, "issue_id": issue_id} for values in new])
            added = len(new)
    return Put(issue_id=issue_id, created=found is None, added=added, seen=len(copies) - added)


def _new_copies(
    conn: Connection, issue_id: int, rows: Sequence[DeliveryRow], now: datetime
) -> list[dict[str, Any]]:
    emails = sorted({r.email for r in rows if r.email})
    ids: dict[str, int] = {}
    for start in range(0, len(emails), 500):
        chunk = emails[start:start + 500]
        ids.update(
            (e, int(i)) for e, i in conn.execute(
                select(subscribers.c.email, subscribers.c.id).where(subscribers.c.email.in_(chunk))
            )
        )
    keys = [r.message_key for r in rows if r.message_key]
    have_keys: set[str] = set()
    for start in range(0, len(keys), 500):
        have_keys.update(
            conn.execute(
                select(deliveries.c.message_key).where(
                    deliveries.c.issue_id == issue_id, deliveries.c.message_key.in_(keys[start:start + 500])
                )
            ).scalars()
        )
    have_readers = set(
        conn.execute(
            select(deliveries.c.subscriber_id).where(
                and_(deliveries.c.issue_id == issue_id, deliveries.c.subscriber_id.is_not(None))
            )
        ).scalars()
    )
    new: list[dict[str, Any]] = []
    for r in rows:
        subscriber = ids.get(r.email)
        known = bool(r.message_key) and r.message_key in have_keys
        if known or (subscriber is not None and subscriber in have_readers):
            continue
        if subscriber is not None:
            have_readers.add(subscriber)
        if r.message_key:
            have_keys.add(r.message_key)
        new.append({
            "subscriber_id": subscriber, "email": r.email, "name": r.name,
            "state": r.state, "attempts": r.attempts, "not_before": r.sent_at or now, "sent_at": r.sent_at,
            "provider_id": "", "detail": r.detail, "message_key": r.message_key, "uncertain": r.uncertain,
        })
    return new


@dataclass(frozen=True, slots=True)
class Choice:
    """A reader's own choices and their links' key, by address."""

    email: str
    frequency: str
    topics: str | None
    """Comma-separated public tags they chose; None for every topic."""
    link_key: str
    line: int = 0


def iter_choices(engine: Engine) -> Iterator[Choice]:
    """Every subscriber's choices and link key, in id order, a page at a time."""
    after = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(subscribers.c.id, subscribers.c.email, subscribers.c.frequency, subscribers.c.topics,
                       subscribers.c.token_key)
                .where(subscribers.c.id > after).order_by(subscribers.c.id).limit(PAGE)
            ).all()
        if not rows:
            return
        for r in rows:
            yield Choice(email=r.email, frequency=r.frequency, topics=r.topics, link_key=r.token_key)
        after = rows[-1].id


@dataclass(frozen=True, slots=True)
class PutChoices:
    updated: int
    unchanged: int
    refused: tuple[str, ...]
    missing: tuple[Choice, ...]
    """Addresses with no subscriber here."""


def put_choices(engine: Engine, rows: Sequence[Choice], *, write: bool = True) -> PutChoices:
    """Give the subscribers with these addresses their choices back. A link key is given
    back only to a subscriber never mailed from here (whose own links are not out yet) and
    never when another subscriber holds it."""
    updated = unchanged = 0
    refused: list[str] = []
    missing: list[Choice] = []
    with (begin_write(engine) if write else engine.connect()) as conn:
        found = {
            r.email: r for r in conn.execute(
                select(subscribers.c.id, subscribers.c.email, subscribers.c.frequency, subscribers.c.topics,
                       subscribers.c.token_key).where(subscribers.c.email.in_([c.email for c in rows]))
            )
        }
        mailed = set(conn.execute(
            select(deliveries.c.subscriber_id).where(
                deliveries.c.subscriber_id.in_([r.id for r in found.values()])
            ).distinct()
        ).scalars())
        holders = dict(conn.execute(
            select(subscribers.c.token_key, subscribers.c.id).where(
                subscribers.c.token_key.in_([c.link_key for c in rows if c.link_key])
            )
        ).all())
        changes: list[dict[str, Any]] = []
        for choice in rows:
            here = found.get(choice.email)
            if here is None:
                missing.append(choice)
                continue
            values: dict[str, Any] = {}
            if (choice.frequency, choice.topics) != (here.frequency, here.topics):
                values.update(frequency=choice.frequency, topics=choice.topics)
            if choice.link_key and choice.link_key != here.token_key and here.id not in mailed:
                holder = holders.get(choice.link_key)
                if holder is not None and holder != here.id:
                    refused.append(f"{choice.line}: {choice.email}'s link key is another subscriber's here")
                    continue
                values["token_key"] = choice.link_key
            if not values:
                unchanged += 1
                continue
            updated += 1
            changes.append({"id": here.id, **values})
        if write:
            for change in changes:
                ident = change.pop("id")
                conn.execute(update(subscribers).where(subscribers.c.id == ident).values(**change))
    return PutChoices(updated, unchanged, tuple(refused), tuple(missing))


@dataclass(frozen=True, slots=True)
class EventRow:
    """One thing that happened to a reader: subscribe, confirm, unsubscribe, bounce, complaint."""

    email: str
    kind: str
    provider: str
    detail: str
    created_at: datetime
    issue_id: int | None
    event_key: str | None


def iter_events(engine: Engine) -> Iterator[EventRow]:
    """Every event in id order, a page at a time."""
    after = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(select(events).where(events.c.id > after).order_by(events.c.id).limit(PAGE)).all()
        if not rows:
            return
        for r in rows:
            yield EventRow(email=r.email, kind=r.kind, provider=r.provider, detail=r.detail,
                           created_at=r.created_at, issue_id=r.issue_id, event_key=r.event_key)
        after = rows[-1].id


def put_events(engine: Engine, rows: Sequence[EventRow], *, write: bool = True) -> tuple[int, int]:
    """Events into this store, each attached to the subscriber with its address here:
    (added, already here). An event is known by its address, kind and moment (and a
    provider's event by its key), so a second import adds nothing."""
    if not rows:
        return 0, 0
    emails = sorted({r.email for r in rows})
    with (begin_write(engine) if write else engine.connect()) as conn:
        ids = dict(conn.execute(
            select(subscribers.c.email, subscribers.c.id).where(subscribers.c.email.in_(emails))
        ).all())
        have = {
            (r.email, r.kind, r.created_at)
            for r in conn.execute(
                select(events.c.email, events.c.kind, events.c.created_at).where(events.c.email.in_(emails))
            )
        }
        keys = {(r.provider, r.event_key) for r in rows if r.event_key}
        have_keys = {
            (p, k) for p, k in conn.execute(
                select(events.c.provider, events.c.event_key).where(
                    events.c.event_key.in_([k for _, k in keys])
                )
            )
        } if keys else set()
        new: list[dict[str, Any]] = []
        for r in rows:
            if (r.email, r.kind, r.created_at) in have or (r.event_key and (r.provider, r.event_key) in have_keys):
                continue
            have.add((r.email, r.kind, r.created_at))
            if r.event_key:
                have_keys.add((r.provider, r.event_key))
            new.append({"subscriber_id": ids.get(r.email), "email": r.email, "kind": r.kind, "provider": r.provider,
                        "detail": r.detail, "created_at": r.created_at, "event_key": r.event_key,
                        "issue_id": r.issue_id})
        if write and new:
            conn.execute(insert(events), new)
    return len(new), len(rows) - len(new)
