"""Saved segments: their rows, and the readers a segment holds now.

A segment is a name and a rule tree (`segment_rules`); the readers it holds are never
stored, only computed, each time by one query (`compile_rules`), so a count, a page of
readers, an export and a send agree at the instant they run. A send to a segment records
on its issue which segment it was (id and name then: the name stays readable after the
segment is deleted) and how many copies it queued.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from publisher.errors import Conflict, InvalidRequest, NotFound
from publisher.models import Subscriber
from publisher.store import segment_rules
from publisher.store.schema import issues, segments, subscribers
from publisher.store.segment_rules import Group
from publisher.store.subscribers import reading

__all__ = [
    "MAX_NAME",
    "IssueSegment",
    "Segment",
    "all_segments",
    "by_name",
    "count",
    "create",
    "get",
    "issue_segment",
    "page",
    "record_count",
    "record_on_issue",
    "remove",
    "update_segment",
]

MAX_NAME = 100


@dataclass(frozen=True, slots=True)
class Segment:
    """A saved segment: its rules parsed, as the store keeps them."""

    id: int
    name: str
    rules: Group
    created_at: datetime
    updated_at: datetime
    updated_by: str = ""


@dataclass(frozen=True, slots=True)
class IssueSegment:
    """The segment an issue was sent (or scheduled) to, as recorded on the issue."""

    segment_id: int
    name: str
    count: int | None
    """Copies the send queued for it; None while it has not been sent."""


def _clean_name(raw: str) -> str:
    name = " ".join(raw.split())
    if not name:
        raise InvalidRequest("name: give the segment a name")
    if len(name) > MAX_NAME:
        raise InvalidRequest(f"name: {MAX_NAME} characters at most")
    return name


def _segment(row: Any) -> Segment:
    return Segment(
        id=row.id, name=row.name, rules=segment_rules.parse_text(row.rules),
        created_at=row.created_at, updated_at=row.updated_at, updated_by=row.updated_by,
    )


def create(engine: Engine, name: str, rules: Group, *, now: datetime, who: str = "") -> Segment:
    """Save a new segment; Conflict when the name is taken."""
    name = _clean_name(name)
    try:
        with engine.begin() as conn:
            new_id = conn.execute(
                insert(segments).values(
                    name=name, rules=segment_rules.dumps(rules), created_at=now, updated_at=now, updated_by=who
                ).returning(segments.c.id)
            ).scalar_one()
    except IntegrityError as exc:
        raise Conflict(f"name: a segment called {name!r} exists already; choose another name") from exc
    return get(engine, int(new_id))


def update_segment(
    engine: Engine, segment_id: int, *, name: str, rules: Group, now: datetime, who: str = ""
) -> Segment:
    """Change a segment's name and rules. Sends already made keep what they recorded."""
    name = _clean_name(name)
    get(engine, segment_id)
    try:
        with engine.begin() as conn:
            conn.execute(
                update(segments).where(segments.c.id == segment_id).values(
                    name=name, rules=segment_rules.dumps(rules), updated_at=now, updated_by=who
                )
            )
    except IntegrityError as exc:
        raise Conflict(f"name: a segment called {name!r} exists already; choose another name") from exc
    return get(engine, segment_id)


def remove(engine: Engine, segment_id: int) -> Segment:
    """Delete a segment; a schedule that names it is held when its time comes."""
    found = get(engine, segment_id)
    with engine.begin() as conn:
        conn.execute(delete(segments).where(segments.c.id == segment_id))
    return found


def get(engine: Engine, segment_id: int) -> Segment:
    """The segment with this id; NotFound otherwise."""
    with engine.connect() as conn:
        row = conn.execute(select(segments).where(segments.c.id == segment_id)).first()
    if row is None:
        raise NotFound(f"no segment with id {segment_id}")
    return _segment(row)


def by_name(engine: Engine, name: str) -> Segment:
    """The segment called `name` (spaces and case as typed do not matter); NotFound naming those there are."""
    wanted = " ".join(name.split()).lower()
    with engine.connect() as conn:
        row = conn.execute(select(segments).where(func.lower(segments.c.name) == wanted)).first()
        if row is None:
            names = [n for (n,) in conn.execute(select(segments.c.name).order_by(segments.c.name).limit(20))]
    if row is None:
        there = (
            f"the segments are: {', '.join(names)}" if names
            else "there are no segments yet (the desk's Segments page makes one)"
        )
        raise NotFound(f"no segment called {name!r}: {there}")
    return _segment(row)


def all_segments(engine: Engine) -> list[Segment]:
    """Every segment, by name."""
    with engine.connect() as conn:
        rows = conn.execute(select(segments).order_by(segments.c.name)).all()
    return [_segment(row) for row in rows]


def count(engine: Engine, rules: Group, *, now: datetime) -> int:
    """How many active readers the rules hold now: one COUNT query.

    On PostgreSQL it runs without JIT compilation: an OR of EXISTS tests is estimated far
    above `jit_above_cost`, and compiling it cost more than half a second of a one-second
    count at a million readers (benchmarks/segments.py), for a query that runs once. It
    runs without parallel workers too: the database shares a few cores with the daemon,
    the desk and the web, and a count of one tag's 300,000 readers among a million took
    0.44-0.53 s alone against 0.83-1.27 s with two workers on two busy cores (the workers
    wait for a core, then the leader waits for them).
    """
    where = segment_rules.compile_rules(rules, now=now)
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL jit = off")
            conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
        return int(conn.execute(select(func.count()).select_from(subscribers).where(where)).scalar_one())


def page(
    engine: Engine, rules: Group, *, now: datetime, after: int = 0, limit: int = 100
) -> tuple[list[Subscriber], bool]:
    """The readers the rules hold, in id order after id `after`, and whether more follow."""
    return reading.page(engine, after=after, limit=limit, where=[segment_rules.compile_rules(rules, now=now)])


def record_on_issue(engine: Engine, issue_id: int, segment: Segment | None) -> None:
    """Note on the issue which segment it goes to (None: to everyone again); its count is cleared."""
    with engine.begin() as conn:
        conn.execute(
            update(issues).where(issues.c.id == issue_id).values(
                segment_id=segment.id if segment else None,
                segment_name=segment.name if segment else None,
                segment_count=None,
            )
        )


def record_count(engine: Engine, issue_id: int, number: int) -> None:
    """Record on the issue the copies its send to the segment queued: the segment's count then."""
    with engine.begin() as conn:
        conn.execute(update(issues).where(issues.c.id == issue_id).values(segment_count=number))


def issue_segment(engine: Engine, issue_id: int) -> IssueSegment | None:
    """The segment recorded on the issue, or None when it goes to everyone (or a tag)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(issues.c.segment_id, issues.c.segment_name, issues.c.segment_count).where(issues.c.id == issue_id)
        ).first()
    if row is None:
        raise NotFound(f"no issue with id {issue_id}")
    if row.segment_id is None:
        return None
    return IssueSegment(segment_id=int(row.segment_id), name=row.segment_name or "", count=row.segment_count)
