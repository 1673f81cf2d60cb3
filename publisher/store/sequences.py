"""Sequences as the store keeps them: who is in which, since when, and what each was handed.

The steps themselves are files (`publisher.content.sequences`); this module keeps:

    sequences            when a sequence was first seen, how far its enrolment has read
                         the event log (`events.id`), and the step list last seen
    sequence_steps       when each step was first seen: a step added later reaches only
                         readers whose day for it had not come when it was added
    sequence_enrolments  one row per (sequence, reader), never a second: a reader who
                         leaves and comes back does not start again; `next_at` is when
                         their next step is due, so the minute job reads only those due
    sequence_sends       one row per (sequence, step, reader), written in the same
                         transaction as the step's ledger row: a step goes to a reader
                         once, whatever its text was then (a row with no issue is a step
                         the reader had passed when it was added)
    sequence_doors       one row per (sequence, reader) an import let in by name
                         (`subscribers import --sequence NAME`), in the import's own
                         transaction; enrolment reads it beside the import's event

Exactly once is the ledger's: `queue_step` inserts the (step, reader) row and the
delivery row together, and the delivery row is claimed, sent and recorded as any issue's
(`publisher.store.ledger`), so a `kill -9` mid-send is recovered like one, and an
unsubscribe committed before the claim wins. Enrolling writes `sequence.started` to the
outbound webhooks' outbox in the same transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, case, exists, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from publisher.models import SubscriberStatus
from publisher.store import outbox
from publisher.store.ledger.rows import QUEUED
from publisher.store.schema import (
    deliveries,
    events,
    issues,
    sequence_doors,
    sequence_enrolments,
    sequence_sends,
    sequence_steps,
    subscriber_tags,
    subscribers,
)
from publisher.store.schema import sequences as sequences_table
from publisher.store.segment_rules import Group, compile_rules

__all__ = [
    "ACTIVE",
    "ELSEWHERE",
    "FINISHED",
    "STOPPED",
    "Enrolment",
    "Known",
    "Reader",
    "add_doors",
    "due",
    "enrol",
    "mark_issue",
    "next_due",
    "pass_step",
    "queue_step",
    "readers",
    "readers_page",
    "set_next",
    "step_counts",
    "stop",
    "sync",
]

ACTIVE = "active"
STOPPED = "stopped"
ISSUE_STATUS = "sequence"
"""The status of a step's issue: never `sending`, so that `finish_issues` leaves it alone
(a step's issue gains rows for as long as readers come)."""
_PAGE = 500


@dataclass(frozen=True, slots=True)
class Known:
    """What the store knows of a sequence: when it and each step were first seen."""

    first_seen_at: datetime
    step_first_seen: Mapping[str, datetime]


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A reader in a sequence, as the minute job needs them."""

    id: int
    subscriber_id: int
    email: str
    name: str
    status: str
    timezone: str | None
    started_at: datetime
    done: frozenset[str]
    """Steps sent to them (or passed by): never handed over again."""


@dataclass(frozen=True, slots=True)
class Reader:
    """A reader in a sequence, for the desk and `publisher sequences show`."""

    subscriber_id: int
    email: str
    started_at: datetime
    state: str
    last_step: str
    """The last step sent to them ("" before the first)."""
    next_at: datetime | None
    enrolment_id: int = 0
    """Its place in the order readers entered: the cursor of `readers_page`."""


def sync(engine: Engine, name: str, steps: Sequence[str], steps_key: str, *, now: datetime) -> Known:
    """Note a sequence and its steps as seen at `now` (those seen before keep their time).

    When the step list differs from the one last seen, every active reader's next step is
    looked at again on the next run (their `next_at` becomes `now`).
    """
    with engine.begin() as conn:
        row = conn.execute(select(sequences_table).where(sequences_table.c.name == name)).first()
        if row is None:
            conn.execute(insert(sequences_table).values(name=name, first_seen_at=now, last_event_id=_last_event(conn),
                                                        steps_key=steps_key))
            first_seen = now
        else:
            first_seen = row.first_seen_at
            if row.steps_key != steps_key:
                conn.execute(update(sequences_table).where(sequences_table.c.name == name).values(steps_key=steps_key))
                conn.execute(
                    update(sequence_enrolments)
                    .where(sequence_enrolments.c.sequence == name, sequence_enrolments.c.state == ACTIVE)
                    .values(next_at=now)
                )
        seen = {
            r.step: r.first_seen_at
            for r in conn.execute(select(sequence_steps).where(sequence_steps.c.sequence == name))
        }
        new = [s for s in steps if s not in seen]
        if new:
            conn.execute(insert(sequence_steps), [{"sequence": name, "step": s, "first_seen_at": now} for s in new])
            seen.update({s: now for s in new})
    return Known(first_seen_at=first_seen, step_first_seen=seen)


def _last_event(conn: Connection) -> int:
    """Where a new sequence starts reading the event log: after every event so far, so
    that readers who joined before it existed are not mailed a welcome."""
    return int(conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one())


_TRIGGER_KINDS = {
    "confirmed": ("confirm", "subscribe"),
    "topic": ("confirm", "subscribe", "preferences", "topic_joined"),
    "imported": ("subscribe",),
}


def _carries(topic: str) -> ColumnElement[bool]:
    """The reader carries `topic` as a tag, or chose it on their preference page."""
    wrapped = "," + func.coalesce(subscribers.c.topics, "") + ","
    return or_(
        exists().where(and_(subscriber_tags.c.subscriber_id == subscribers.c.id, subscriber_tags.c.tag == topic)),
        wrapped.like(f"%,{topic},%"),
    )


def _let_in(name: str) -> ColumnElement[bool]:
    """An import let the reader into `name` by name (`sequence_doors`)."""
    return exists().where(and_(sequence_doors.c.sequence == name, sequence_doors.c.subscriber_id == subscribers.c.id))


def add_doors(conn: Connection, name: str, subscriber_ids: Sequence[int], *, now: datetime) -> None:
    """Let readers an import just created into `name`, inside the import's transaction."""
    if subscriber_ids:
        conn.execute(insert(sequence_doors),
                     [{"sequence": name, "subscriber_id": sid, "at": now} for sid in subscriber_ids])


def enrol(
    engine: Engine, name: str, trigger: str, topic: str, *, now: datetime, segment: Group | None = None,
    limit: int = 5000,
) -> int:
    """Enrol the readers that the events since the last look start `name` for; how many.

    "confirmed": a confirmation, or a reader added active by any door but an import;
    "topic": a reader who joined, confirmed or changed their choices and now carries
    `topic`; "imported": a reader an import let in by name, or one imported carrying
    `topic` when it is given. The reader must be active when this runs, and held by
    `segment` (a saved segment's rules) when one is given. Delays count from the event's time.
    """
    kinds = _TRIGGER_KINDS[trigger]
    added = 0
    with engine.begin() as conn:
        last = conn.execute(
            update(sequences_table).where(sequences_table.c.name == name)
            .values(last_event_id=sequences_table.c.last_event_id).returning(sequences_table.c.last_event_id)
        ).scalar_one()
        page = conn.execute(
            select(events.c.id, events.c.kind, events.c.provider, events.c.created_at, events.c.subscriber_id)
            .where(events.c.id > last).order_by(events.c.id).limit(limit)
        ).all()
        if not page:
            return 0
        _stop_departed(conn, name, {row.subscriber_id for row in page if row.kind in _DEPARTURES})
        wanted = [row for row in page if row.kind in kinds and row.subscriber_id is not None]
        ids = sorted({row.subscriber_id for row in wanted})
        conditions: list[object] = [subscribers.c.id.in_(ids), subscribers.c.status == SubscriberStatus.ACTIVE.value]
        if trigger == "imported":
            conditions.append(or_(_let_in(name), _carries(topic)) if topic else _let_in(name))
        elif topic:
            conditions.append(_carries(topic))
        if segment is not None:
            conditions.append(compile_rules(segment, now=now))
        eligible = {
            r.id: r.email
            for r in conn.execute(select(subscribers.c.id, subscribers.c.email).where(*conditions))  # type: ignore[arg-type]
        } if ids else {}
        enrolled = set(conn.execute(
            select(sequence_enrolments.c.subscriber_id)
            .where(sequence_enrolments.c.sequence == name, sequence_enrolments.c.subscriber_id.in_(ids))
        ).scalars()) if ids else set()
        # A reader's latest event in the page starts it: a signup's "subscribe" and its
        # "confirm" read together, the confirmation is when they joined.
        latest = {}
        for row in wanted:
            imported = row.provider.startswith("import")
            if (trigger == "confirmed" and imported) or (trigger == "imported" and not imported):
                continue
            latest[row.subscriber_id] = row
        for row in sorted(latest.values(), key=lambda r: r.id):
            if row.subscriber_id not in eligible or row.subscriber_id in enrolled:
                continue
            conn.execute(insert(sequence_enrolments).values(
                sequence=name, subscriber_id=row.subscriber_id, started_at=row.created_at, state=ACTIVE,
                next_at=row.created_at, detail="",
            ))
            outbox.emit(conn, "sequence.started", {
                "sequence": name, "id": row.subscriber_id, "email": eligible[row.subscriber_id],
                "started_at": row.created_at.isoformat(),
            }, now=now)
            enrolled.add(row.subscriber_id)
            added += 1
        conn.execute(update(sequences_table).where(sequences_table.c.name == name)
                     .values(last_event_id=page[-1].id))
    if len(page) == limit:
        added += enrol(engine, name, trigger, topic, now=now, segment=segment, limit=limit)
    return added


_DEPARTURES = ("unsubscribe", "bounce", "complaint")


def _stop_departed(conn: Connection, name: str, ids: set[int | None]) -> None:
    """Take out at once the readers the page's events say left (and who are still gone), so
    that the counts show them stopped before their next step would have been due."""
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return
    status = select(subscribers.c.status).where(subscribers.c.id == sequence_enrolments.c.subscriber_id)
    conn.execute(
        update(sequence_enrolments)
        .where(sequence_enrolments.c.sequence == name, sequence_enrolments.c.state == ACTIVE,
               sequence_enrolments.c.subscriber_id.in_(wanted),
               status.scalar_subquery() != SubscriberStatus.ACTIVE.value)
        .values(state=STOPPED, next_at=None, detail="reader " + status.scalar_subquery())
    )


def due(engine: Engine, name: str, *, now: datetime, limit: int = _PAGE) -> list[Enrolment]:
    """Active readers of `name` whose next step may be due, oldest first."""
    query = (
        select(sequence_enrolments.c.id, sequence_enrolments.c.subscriber_id, sequence_enrolments.c.started_at,
               subscribers.c.email, subscribers.c.name, subscribers.c.status, subscribers.c.timezone)
        .join(subscribers, subscribers.c.id == sequence_enrolments.c.subscriber_id)
        .where(sequence_enrolments.c.sequence == name, sequence_enrolments.c.state == ACTIVE,
               sequence_enrolments.c.next_at <= now)
        .order_by(sequence_enrolments.c.next_at, sequence_enrolments.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        done: dict[int, set[str]] = {row.subscriber_id: set() for row in rows}
        if rows:
            for sent in conn.execute(
                select(sequence_sends.c.subscriber_id, sequence_sends.c.step)
                .where(sequence_sends.c.sequence == name, sequence_sends.c.subscriber_id.in_(list(done)))
            ):
                done[sent.subscriber_id].add(sent.step)
    return [
        Enrolment(id=row.id, subscriber_id=row.subscriber_id, email=row.email, name=row.name, status=row.status,
                  timezone=row.timezone, started_at=row.started_at, done=frozenset(done[row.subscriber_id]))
        for row in rows
    ]


def next_due(engine: Engine) -> datetime | None:
    """The nearest moment any active reader of any sequence is due at (one index look-up)."""
    with engine.connect() as conn:
        found: datetime | None = conn.execute(
            select(func.min(sequence_enrolments.c.next_at)).where(sequence_enrolments.c.state == ACTIVE)
        ).scalar_one()
    return found


def queue_step(engine: Engine, name: str, step: str, enrolment: Enrolment, issue_id: int, *, now: datetime) -> bool:
    """Hand `step` to the ledger for one reader, once: the (step, reader) row and the
    delivery row in one transaction. False when it was handed over before, or the reader
    is no longer active (nothing is written then)."""
    try:
        with engine.begin() as conn:
            # The write comes first: it takes the write lock before anything is read.
            conn.execute(insert(sequence_sends).values(
                sequence=name, step=step, subscriber_id=enrolment.subscriber_id, issue_id=issue_id, at=now,
            ))
            active = conn.execute(
                select(subscribers.c.email, subscribers.c.name)
                .where(subscribers.c.id == enrolment.subscriber_id,
                       subscribers.c.status == SubscriberStatus.ACTIVE.value)
            ).first()
            if active is None:
                raise _Left
            conn.execute(insert(deliveries).values(
                issue_id=issue_id, subscriber_id=enrolment.subscriber_id, email=active.email, name=active.name,
                state=QUEUED, attempts=0, not_before=now, provider_id="", detail="", uncertain=False,
                message_key=secrets.token_hex(12),
            ))
    except (IntegrityError, _Left):
        return False
    return True


class _Left(Exception):
    """The reader is no longer active: the step's rows are rolled back."""


def pass_step(engine: Engine, name: str, step: str, subscriber_id: int, *, now: datetime) -> None:
    """Note that a reader had passed `step` when it was added: it never goes to them."""
    try:
        with engine.begin() as conn:
            conn.execute(insert(sequence_sends).values(
                sequence=name, step=step, subscriber_id=subscriber_id, issue_id=None, at=now,
            ))
    except IntegrityError:
        pass


def set_next(engine: Engine, enrolment_id: int, next_at: datetime | None) -> None:
    with engine.begin() as conn:
        conn.execute(update(sequence_enrolments).where(sequence_enrolments.c.id == enrolment_id)
                     .values(next_at=next_at))


def stop(engine: Engine, enrolment_id: int, why: str) -> None:
    """Take a reader out of a sequence for good (they left the list)."""
    with engine.begin() as conn:
        conn.execute(update(sequence_enrolments).where(sequence_enrolments.c.id == enrolment_id)
                     .values(state=STOPPED, next_at=None, detail=why))


def mark_issue(engine: Engine, issue_id: int) -> None:
    """Give a step's issue the status that keeps `finish_issues` off it."""
    with engine.begin() as conn:
        conn.execute(update(issues).where(issues.c.id == issue_id).values(status=ISSUE_STATUS))


def _last_steps(conn: Connection, name: str, order: Sequence[str], ids: Sequence[int]) -> dict[int, str]:
    """The last step sent to each reader of `ids`, in the order of `order` (a step no
    longer there counts only when nothing in the list was sent)."""
    rank = {step: i for i, step in enumerate(order)}
    last: dict[int, tuple[int, str]] = {}
    for row in conn.execute(
        select(sequence_sends.c.subscriber_id, sequence_sends.c.step)
        .where(sequence_sends.c.sequence == name, sequence_sends.c.issue_id.is_not(None),
               sequence_sends.c.subscriber_id.in_(list(ids)))
    ):
        position = rank.get(row.step, -1)
        if row.subscriber_id not in last or position > last[row.subscriber_id][0]:
            last[row.subscriber_id] = (position, row.step)
    return {sid: step for sid, (_pos, step) in last.items()}


ELSEWHERE = "(elsewhere)"
"""`step_counts`' key for readers whose last step was removed since."""


FINISHED = "(finished)"
"""`step_counts`' key for active readers with no step left to wait for (counted at their step too)."""


def step_counts(engine: Engine, name: str, order: Sequence[str]) -> dict[str, int]:
    """How many readers stand at each step (their last step sent), counted in the
    database: "" for those not sent a step yet, "(stopped)" for readers taken out, and
    ELSEWHERE for those whose last step sent is no longer in `order`; FINISHED counts,
    besides, the active readers with no step left for them."""
    position = case({step: i for i, step in enumerate(order)}, value=sequence_sends.c.step, else_=-1) \
        if order else literal(-1)
    last = (
        select(sequence_sends.c.subscriber_id, func.max(position).label("at"))
        .where(sequence_sends.c.sequence == name, sequence_sends.c.issue_id.is_not(None))
        .group_by(sequence_sends.c.subscriber_id)
        .subquery()
    )
    query = (
        select(sequence_enrolments.c.state, last.c.at, func.count())
        .select_from(sequence_enrolments.outerjoin(last, last.c.subscriber_id == sequence_enrolments.c.subscriber_id))
        .where(sequence_enrolments.c.sequence == name)
        .group_by(sequence_enrolments.c.state, last.c.at)
    )
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        counts[FINISHED] = int(conn.execute(
            select(func.count()).select_from(sequence_enrolments)
            .where(sequence_enrolments.c.sequence == name, sequence_enrolments.c.state == ACTIVE,
                   sequence_enrolments.c.next_at.is_(None))
        ).scalar_one())
        for state, at, n in conn.execute(query):
            if state == STOPPED:
                key = "(stopped)"
            elif at is None:
                key = ""
            else:
                key = order[at] if at >= 0 else ELSEWHERE
            counts[key] = counts.get(key, 0) + int(n)
    return counts


def readers(engine: Engine, name: str, order: Sequence[str], *, limit: int = 200) -> list[Reader]:
    """The readers in `name`, newest first (at most `limit`), with their step."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(sequence_enrolments.c.subscriber_id, sequence_enrolments.c.started_at,
                   sequence_enrolments.c.state, sequence_enrolments.c.next_at, subscribers.c.email)
            .join(subscribers, subscribers.c.id == sequence_enrolments.c.subscriber_id)
            .where(sequence_enrolments.c.sequence == name)
            .order_by(sequence_enrolments.c.started_at.desc(), sequence_enrolments.c.id.desc())
            .limit(limit)
        ).all()
        last = _last_steps(conn, name, order, [row.subscriber_id for row in rows])
    return [
        Reader(subscriber_id=row.subscriber_id, email=row.email, started_at=row.started_at, state=row.state,
               last_step=last.get(row.subscriber_id, ""), next_at=row.next_at)
        for row in rows
    ]



def readers_page(
    engine: Engine, name: str, order: Sequence[str], *, after: int = 0, limit: int = 100
) -> tuple[list[Reader], bool]:
    """The readers in `name` in the order they entered, after enrolment `after`, a page of
    `limit`, with their step; and whether more follow."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(sequence_enrolments.c.id, sequence_enrolments.c.subscriber_id, sequence_enrolments.c.started_at,
                   sequence_enrolments.c.state, sequence_enrolments.c.next_at, subscribers.c.email)
            .join(subscribers, subscribers.c.id == sequence_enrolments.c.subscriber_id)
            .where(sequence_enrolments.c.sequence == name, sequence_enrolments.c.id > after)
            .order_by(sequence_enrolments.c.id)
            .limit(limit + 1)
        ).all()
        more = len(rows) > limit
        rows = rows[:limit]
        last = _last_steps(conn, name, order, [row.subscriber_id for row in rows])
    return [
        Reader(subscriber_id=row.subscriber_id, email=row.email, started_at=row.started_at, state=row.state,
               last_step=last.get(row.subscriber_id, ""), next_at=row.next_at, enrolment_id=row.id)
        for row in rows
    ], more
