"""Writing the ledger: one row per (issue, subscriber) for a send, in one transaction.

`enqueue` snapshots the audience at the moment of the send (a later subscriber is not in
it, an unsubscribe before the claim wins); a row's `not_before` is the reader's own wall
clock when the send goes out at a local time. `retry_failed` and `cancel_queued` change
waiting rows only: a row a worker holds is never touched here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine, and_, exists, false, func, insert, literal, or_, select, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Integer, String

from publisher.errors import InvalidRequest
from publisher.models import SubscriberStatus
from publisher.schedule import timing
from publisher.store.issues import get_issue
from publisher.store.ledger.rows import CLAIMABLE, FAILED, HELD, ISSUE_TAG, QUEUED, RETRY, SENDING, SENT, SKIPPED
from publisher.store.schema import deliveries, issues, subscriber_tags, subscribers
from publisher.store.subscribers import clean_tags

__all__ = [
    "ByteLength",
    "RandomHex",
    "cancel_queued",
    "count_audience",
    "count_new_recipients",
    "count_non_ascii",
    "enqueue",
    "fail_non_ascii",
    "local_not_before",
    "retry_failed",
]


HAD_STATES = (QUEUED, SENDING, SENT, RETRY, HELD)
"""A copy a reader has, or will have: every state but failed and skipped."""

def local_not_before(now: datetime, local_at: datetime, zone: ZoneInfo) -> datetime:
    """When a row for a reader in `zone` may go: the moment their clock shows `local_at`
    (a naive wall-clock time, date and minutes), or `now` if that moment has passed."""
    return max(now, timing.wall_clock_to_utc(local_at, zone))


class RandomHex(FunctionElement[str]):
    """24 random hex digits drawn by the database, one per row of an INSERT ... SELECT:
    the Message-ID part of each new ledger row (90 bits and more: unique in the world)."""

    type = String()
    inherit_cache = True


@compiles(RandomHex, "sqlite")
def _random_hex_sqlite(element: RandomHex, compiler: Any, **kw: Any) -> str:
    return "lower(hex(randomblob(12)))"


@compiles(RandomHex, "postgresql")
def _random_hex_postgresql(element: RandomHex, compiler: Any, **kw: Any) -> str:
    return "substr(replace(gen_random_uuid()::text, '-', ''), 1, 24)"


class ByteLength(FunctionElement[int]):
    """The length of a text column in bytes (UTF-8), where `length` counts characters."""

    type = Integer()
    inherit_cache = True


@compiles(ByteLength, "sqlite")
def _byte_length_sqlite(element: ByteLength, compiler: Any, **kw: Any) -> str:
    return f"length(CAST({compiler.process(element.clauses, **kw)} AS BLOB))"


@compiles(ByteLength, "postgresql")
def _byte_length_postgresql(element: ByteLength, compiler: Any, **kw: Any) -> str:
    return f"octet_length({compiler.process(element.clauses, **kw)})"


def _non_ascii(issue_id: int | None) -> list[Any]:
    """Waiting rows whose address is not ASCII. Stored addresses have ASCII (IDNA)
    domains, so that means a non-ASCII mailbox name."""
    conditions = [
        deliveries.c.state.in_(CLAIMABLE),
        ByteLength(deliveries.c.email) != func.length(deliveries.c.email),
    ]
    if issue_id is not None:
        conditions.append(deliveries.c.issue_id == issue_id)
    return conditions


def count_non_ascii(engine: Engine, *, issue_id: int | None) -> int:
    """How many waiting rows (of `issue_id`, or of every issue) have a non-ASCII mailbox name."""
    with engine.connect() as conn:
        query = select(func.count()).select_from(deliveries).where(*_non_ascii(issue_id))
        return int(conn.execute(query).scalar_one())


def fail_non_ascii(engine: Engine, *, issue_id: int | None, detail: str) -> list[str]:
    """Fail every waiting row with a non-ASCII mailbox name at once, with `detail`: for a
    provider that can never deliver to one. Returns their addresses."""
    with engine.begin() as conn:
        rows = conn.execute(
            update(deliveries)
            .where(*_non_ascii(issue_id))
            .values(state=FAILED, detail=detail, claimed_by=None, claimed_at=None)
            .returning(deliveries.c.email)
        ).all()
    return sorted(row.email for row in rows)


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def enqueue(
    engine: Engine,
    issue_id: int,
    *,
    now: datetime,
    local_at: datetime | None = None,
    tz_of_author: str | ZoneInfo = "UTC",
    where: Sequence[Any] = (),
    tag: Any = ISSUE_TAG,
    digest: bool = True,
    held: bool = False,
    skip_had: Sequence[int] = (),
) -> int:
    """Write one `queued` row per active subscriber (of `tag`) in one transaction.

    `where` narrows the audience with conditions on `subscribers`: a saved segment's
    compiled rules.

    Subscribers are copied by INSERT ... SELECT inside the database: the list is never
    loaded. Rows that exist already are left alone, so enqueuing the same issue again
    adds only subscribers who joined since. With `local_at` (a naive wall-clock time:
    date, hour and minute), each row waits until the subscriber's clock shows it (the
    author's clock for subscribers without a zone), or goes now if that has passed: one
    INSERT per distinct zone. Without it every row is due now; nothing of an earlier
    local-time schedule carries over. `digest` says whether the publication sends a
    digest (`schedule.digest`); without one, a reader who chose "the digest only" gets
    every article. `held` writes the rows `held` instead, for a subject test to give them
    their subjects (none is claimable before). `skip_had` leaves out the readers who have
    a copy (sent, or on its way) of every one of those issues: a digest's articles that a
    reader had one by one. Returns the number of rows added.
    """
    issue = get_issue(engine, issue_id)
    if issue.kind == "sequence":
        # A sequence's step reaches its readers one by one (publisher.store.sequences), never the list.
        raise InvalidRequest(f"issue {issue_id} is step {issue.slug!r} of a sequence: it goes to each reader "
                             "of the sequence on their day, and cannot be sent to the list")
    segment = issue.tag if tag is ISSUE_TAG else tag
    author_zone = tz_of_author if isinstance(tz_of_author, ZoneInfo) else ZoneInfo(tz_of_author)

    conditions = [
        *_audience(issue_id, segment, kind=issue.kind, topics=issue.topics, digest=digest, skip_had=skip_had),
        *where,
    ]
    columns = ["issue_id", "subscriber_id", "email", "name", "state", "attempts", "not_before",
               "provider_id", "detail", "uncertain", "message_key"]

    def rows_for(not_before: datetime, *extra: Any) -> Any:
        query = select(
            literal(issue_id),
            subscribers.c.id,
            subscribers.c.email,
            subscribers.c.name,
            literal(HELD if held else QUEUED),
            literal(0),
            literal(not_before, type_=deliveries.c.not_before.type),
            literal(""),
            literal(""),
            false(),
            RandomHex(),
        ).where(*conditions, *extra)
        return insert(deliveries).from_select(columns, query)

    with engine.begin() as conn:
        # The status update comes first: it takes the write lock before anything is read.
        conn.execute(
            update(issues)
            .where(issues.c.id == issue_id)
            .values(
                status="sending",
                enqueued_at=func.coalesce(issues.c.enqueued_at, now),
                finished_at=None,
            )
        )
        # Counted rather than taken from rowcount, which psycopg reports as -1 for
        # INSERT ... SELECT.
        existing = select(func.count()).where(deliveries.c.issue_id == issue_id)
        before = conn.execute(existing).scalar_one()
        if local_at is None:
            conn.execute(rows_for(now))
        else:
            zone_names = [
                name
                for (name,) in conn.execute(
                    select(subscribers.c.timezone)
                    .where(*conditions, subscribers.c.timezone.is_not(None))
                    .distinct()
                )
            ]
            author_zone_names: list[str] = []
            for name in zone_names:
                zone = _zone(name)
                if zone is None:
                    author_zone_names.append(name)
                    continue
                statement = rows_for(
                    local_not_before(now, local_at, zone), subscribers.c.timezone == name
                )
                conn.execute(statement)
            author_rows = rows_for(
                local_not_before(now, local_at, author_zone),
                or_(
                    subscribers.c.timezone.is_(None),
                    subscribers.c.timezone.in_(author_zone_names) if author_zone_names else false(),
                ),
            )
            conn.execute(author_rows)
        return int(conn.execute(existing).scalar_one() - before)


def _audience(
    issue_id: int | None, segment: str | None, *, kind: str | None = None, topics: Sequence[str] = (),
    digest: bool = True, skip_had: Sequence[int] = (),
) -> list[Any]:
    """Conditions on `subscribers` for who an enqueue of `issue_id` would add.

    Readers' own choices count here, so that every way of sending honours them: an
    article issue skips readers who want the digest only (while there is a digest: a
    choice that no longer exists must not mean "nothing"), and an article with public
    tags (`topics`) goes to readers who chose topics only when one of them matches. With
    `skip_had`, readers who have a copy of each of those issues are left out.
    """
    conditions: list[Any] = [subscribers.c.status == SubscriberStatus.ACTIVE.value]
    if kind == "article" and digest:
        conditions.append(subscribers.c.frequency != "digest")
    if skip_had:
        conditions.append(~and_(*(
            exists().where(
                deliveries.c.issue_id == had,
                deliveries.c.subscriber_id == subscribers.c.id,
                deliveries.c.state.in_(HAD_STATES),
            )
            for had in skip_had
        )))
    if topics:
        wrapped = literal(",") + subscribers.c.topics + literal(",")
        conditions.append(
            or_(subscribers.c.topics.is_(None), *(wrapped.like(f"%,{topic},%") for topic in topics))
        )
    if issue_id is not None:
        conditions.append(
            ~exists().where(
                and_(deliveries.c.issue_id == issue_id, deliveries.c.subscriber_id == subscribers.c.id)
            )
        )
    # Tags are stored cleaned (lower-case), so `--tag Clinicians` must be cleaned the same way.
    wanted = clean_tags([segment]) if segment else ()
    if wanted:
        conditions.append(
            exists().where(
                and_(
                    subscriber_tags.c.subscriber_id == subscribers.c.id,
                    subscriber_tags.c.tag == wanted[0],
                )
            )
        )
    return conditions


def count_new_recipients(
    engine: Engine, *, issue_id: int | None, tag: str | None, kind: str | None = None,
    topics: Sequence[str] = (), digest: bool = True,
) -> int:
    """How many rows `enqueue` would add now (a dry run): counted in the database.

    For an issue not yet in the ledger, give the `kind` and `topics` it will have;
    `digest` as for `enqueue`.
    """
    if issue_id is not None:
        issue = get_issue(engine, issue_id)
        kind, topics = issue.kind, issue.topics
    query = select(func.count()).select_from(subscribers).where(
        *_audience(issue_id, tag, kind=kind, topics=topics, digest=digest)
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def count_audience(
    engine: Engine, *, issue_id: int | None, tag: str | None, kind: str | None = None,
    topics: Sequence[str] = (), digest: bool = True, where: Sequence[Any] = (),
) -> tuple[int, int, int]:
    """Who a send would reach, and why the others would not: (active readers of `tag`,
    those who had the issue already, those it would reach now). The rest of the active
    readers chose otherwise (the digest only, other topics). Arguments as for
    `count_new_recipients`; `where` as for `enqueue`."""
    if issue_id is not None:
        issue = get_issue(engine, issue_id)
        kind, topics = issue.kind, issue.topics
    everyone = [*_audience(None, tag), *where]
    had = exists().where(and_(deliveries.c.issue_id == issue_id, deliveries.c.subscriber_id == subscribers.c.id))
    with engine.connect() as conn:
        active = int(conn.execute(select(func.count()).select_from(subscribers).where(*everyone)).scalar_one())
        had_it = 0 if issue_id is None else int(
            conn.execute(select(func.count()).select_from(subscribers).where(*everyone, had)).scalar_one()
        )
        reach = int(conn.execute(
            select(func.count()).select_from(subscribers).where(
                *_audience(issue_id, tag, kind=kind, topics=topics, digest=digest), *where
            )
        ).scalar_one())
    return active, had_it, reach


def retry_failed(engine: Engine, issue_id: int, *, now: datetime) -> int:
    """Give the issue's failed rows another round of attempts; how many were requeued.

    They keep their Message-ID, so a copy that did arrive after all is recognisable. A
    reader who left meanwhile is skipped at claim time, like any queued row.
    """
    get_issue(engine, issue_id)  # NotFound for an unknown issue
    with engine.begin() as conn:
        done = conn.execute(
            update(deliveries)
            .where(deliveries.c.issue_id == issue_id, deliveries.c.state == FAILED)
            .values(state=QUEUED, attempts=0, not_before=now, claimed_by=None, claimed_at=None)
        ).rowcount
        if done:
            conn.execute(
                update(issues).where(issues.c.id == issue_id).values(status="sending", finished_at=None)
            )
    return int(done)


def cancel_queued(engine: Engine, issue_id: int, *, now: datetime) -> int:
    """Take back every row of the issue not yet claimed (queued, waiting to retry, or held
    for a subject test's decision).

    The rows become `skipped` with a note, so they are counted and never sent; rows
    already in flight finish as they would. Returns the number of rows taken back.
    """
    get_issue(engine, issue_id)  # NotFound for an unknown issue
    with engine.begin() as conn:
        result = conn.execute(
            update(deliveries)
            .where(deliveries.c.issue_id == issue_id, deliveries.c.state.in_([QUEUED, RETRY, HELD]))
            .values(state=SKIPPED, detail="cancelled by the author", claimed_at=now)
        )
    return int(result.rowcount or 0)
