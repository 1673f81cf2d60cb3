"""The delivery ledger: one row per (issue, subscriber), the truth of what was sent.

A row's life: `queued` -> `sending` (claimed by one worker) -> `sent` | `retry` (back to
claimable at `not_before`) | `failed` (permanent) | `skipped` (the subscriber left before
the row was claimed); a waiting row the provider can never deliver (`fail_non_ascii`)
goes straight to `failed`. A worker that dies leaves its rows in `sending`; `recover` puts them
back to `queued` with `uncertain` set, because the provider may have taken them already.
`record` sets it too on a retry whose attempt got no answer after the message left (a
timeout): the next attempt may deliver a second copy, and that is reported, not hidden.

Every write here is a single transaction whose first statement writes, so that SQLite
takes its one write lock at once (waiting on the busy timeout) instead of failing to
upgrade a read snapshot; on PostgreSQL claims use `FOR UPDATE SKIP LOCKED`, so that
several worker processes split the queue without blocking each other.

The issue snapshots the rows point at live in `publisher.store.issues`; their functions
are re-exported here so that callers work with one module.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    Boolean,
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Integer, String

from publisher.models import Outcome, SendResult, SubscriberStatus
from publisher.schedule import timing
from publisher.store import outbox
from publisher.store.issues import (
    FailedDelivery,
    IssueSnapshot,
    IssueStatus,
    create_issue,
    failure_reasons,
    failures,
    find_issue,
    get_issue,
    is_frozen,
    refresh_issue,
    status,
)
from publisher.store.schema import deliveries, events, issues, subscriber_tags, subscribers
from publisher.store.subscribers import clean_tags

__all__ = [
    "CLAIMABLE",
    "ClaimedRow",
    "FailedDelivery",
    "IssueSnapshot",
    "IssueStatus",
    "RecordPolicy",
    "Recovered",
    "RecoveredRow",
    "cancel_queued",
    "claim",
    "count_due",
    "count_new_recipients",
    "count_non_ascii",
    "create_issue",
    "enqueue",
    "fail_non_ascii",
    "failure_reasons",
    "failures",
    "find_issue",
    "finish_issues",
    "get_issue",
    "is_frozen",
    "local_not_before",
    "new_worker_id",
    "next_due",
    "record",
    "recover",
    "refresh_issue",
    "release",
    "retry_failed",
    "status",
    "worker_is_dead",
]

QUEUED, SENDING, SENT, RETRY, FAILED, SKIPPED = "queued", "sending", "sent", "retry", "failed", "skipped"
CLAIMABLE = (QUEUED, RETRY)
ISSUE_TAG: Any = object()
"""Default for `enqueue(tag=...)`: the segment stored with the issue."""


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    """A ledger row this worker now owns: send it, then `record` the result."""

    id: int
    issue_id: int
    subscriber_id: int
    email: str
    name: str
    attempts: int = 0
    uncertain: bool = False
    message_key: str = ""
    """The left-hand part of the row's Message-ID, the same on every attempt."""
    token_key: str = ""
    """The subscriber's link key, which their unsubscribe link carries."""


@dataclass(frozen=True, slots=True)
class RecoveredRow:
    id: int
    issue_id: int
    email: str
    claimed_by: str


@dataclass(frozen=True, slots=True)
class Recovered:
    """Rows that were in flight when their worker died: they may have gone out already."""

    rows: tuple[RecoveredRow, ...] = ()

    @property
    def count(self) -> int:
        return len(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


class RecordPolicy(Protocol):
    """What `record` needs to know about retries (see `publisher.delivery.retry`)."""

    @property
    def max_attempts(self) -> int: ...

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        ...

    def is_hard_bounce(self, result: SendResult) -> bool:
        """Whether a permanent failure says the address itself is dead."""
        ...


def new_worker_id() -> str:
    """`host:pid:uuid`: enough for `recover` to tell a dead local worker from a live one.

    `host` carries the PID namespace where there is one (`name~ns`): containers that share
    a hostname (host networking) do not share process ids, and a pid that is free in one
    may be a live sender in the other.
    """
    return f"{_this_host()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _pid_namespace() -> str:
    """This process's PID namespace (Linux), or "" where there is no such thing."""
    try:
        return format(Path("/proc/self/ns/pid").stat().st_ino, "x")
    except OSError:
        return ""


def _this_host() -> str:
    namespace = _pid_namespace()
    name = socket.gethostname()
    return f"{name}~{namespace}" if namespace else name


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_is_dead(worker: str, *, host: str | None = None) -> bool:
    """A worker of this host whose process is gone. Other hosts' workers: unknown (False).

    "This host" is the hostname and PID namespace (see `new_worker_id`); an id with the
    bare hostname (written by an older publisher) is judged by its pid as before. A live
    process with the same pid (this one included) counts as alive: its rows are left to
    the lease.
    """
    this_host = host if host is not None else _this_host()
    parts = worker.rsplit(":", 2)
    if len(parts) != 3 or parts[0] not in (this_host, this_host.split("~", 1)[0]):
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    return not _pid_alive(pid)


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
    tag: Any = ISSUE_TAG,
) -> int:
    """Write one `queued` row per active subscriber (of `tag`) in one transaction.

    Subscribers are copied by INSERT ... SELECT inside the database: the list is never
    loaded. Rows that exist already are left alone, so enqueuing the same issue again
    adds only subscribers who joined since. With `local_at` (a naive wall-clock time:
    date, hour and minute), each row waits until the subscriber's clock shows it (the
    author's clock for subscribers without a zone), or goes now if that has passed: one
    INSERT per distinct zone. Without it every row is due now; nothing of an earlier
    local-time schedule carries over. Returns the number of rows added.
    """
    issue = get_issue(engine, issue_id)
    segment = issue.tag if tag is ISSUE_TAG else tag
    author_zone = tz_of_author if isinstance(tz_of_author, ZoneInfo) else ZoneInfo(tz_of_author)

    conditions = _audience(issue_id, segment, kind=issue.kind, topics=issue.topics)
    columns = ["issue_id", "subscriber_id", "email", "name", "state", "attempts", "not_before",
               "provider_id", "detail", "uncertain", "message_key"]

    def rows_for(not_before: datetime, *extra: Any) -> Any:
        query = select(
            literal(issue_id),
            subscribers.c.id,
            subscribers.c.email,
            subscribers.c.name,
            literal(QUEUED),
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
    issue_id: int | None, segment: str | None, *, kind: str | None = None, topics: Sequence[str] = ()
) -> list[Any]:
    """Conditions on `subscribers` for who an enqueue of `issue_id` would add.

    Readers' own choices count here, so that every way of sending honours them: an
    article issue skips readers who want the digest only, and an article with public
    tags (`topics`) goes to readers who chose topics only when one of them matches.
    """
    conditions: list[Any] = [subscribers.c.status == SubscriberStatus.ACTIVE.value]
    if kind == "article":
        conditions.append(subscribers.c.frequency != "digest")
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
    topics: Sequence[str] = (),
) -> int:
    """How many rows `enqueue` would add now (a dry run): counted in the database.

    For an issue not yet in the ledger, give the `kind` and `topics` it will have.
    """
    if issue_id is not None:
        issue = get_issue(engine, issue_id)
        kind, topics = issue.kind, issue.topics
    query = select(func.count()).select_from(subscribers).where(
        *_audience(issue_id, tag, kind=kind, topics=topics)
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


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


def _claim_statement(*, worker: str, limit: int, now: datetime, issue_id: int | None) -> Any:
    """UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED) RETURNING ...

    SQLite has no row locks (the dialect drops the clause) and needs none: the UPDATE
    holds its single write lock for the whole statement.
    """
    due = select(deliveries.c.id).where(
        deliveries.c.state.in_(CLAIMABLE), deliveries.c.not_before <= now
    )
    if issue_id is not None:
        due = due.where(deliveries.c.issue_id == issue_id)
    due = due.limit(limit).with_for_update(skip_locked=True)
    still_active = exists().where(
        and_(
            subscribers.c.id == deliveries.c.subscriber_id,
            subscribers.c.status == SubscriberStatus.ACTIVE.value,
        )
    )
    return (
        update(deliveries)
        .where(deliveries.c.id.in_(due.scalar_subquery()))
        .values(
            state=case((still_active, SENDING), else_=SKIPPED),
            detail=case((still_active, deliveries.c.detail), else_="subscriber no longer active"),
            claimed_by=worker,
            claimed_at=now,
        )
        .returning(
            deliveries.c.id,
            deliveries.c.issue_id,
            deliveries.c.subscriber_id,
            deliveries.c.email,
            deliveries.c.name,
            deliveries.c.state,
            deliveries.c.attempts,
            deliveries.c.uncertain,
            deliveries.c.message_key,
            select(subscribers.c.token_key)
            .where(subscribers.c.id == deliveries.c.subscriber_id)
            .scalar_subquery()
            .label("token_key"),
        )
    )


def claim(
    engine: Engine,
    *,
    worker: str,
    limit: int,
    now: datetime,
    issue_id: int | None = None,
) -> list[ClaimedRow]:
    """Take up to `limit` due rows for `worker`, in one statement.

    A row whose subscriber is no longer active (unsubscribed, bounced, complained) is
    marked `skipped` by the same statement instead of being handed out: an unsubscribe
    committed before the claim always wins.
    """
    if limit <= 0:
        return []
    statement = _claim_statement(worker=worker, limit=limit, now=now, issue_id=issue_id)
    with engine.begin() as conn:
        rows = conn.execute(statement).all()
    claimed = [
        ClaimedRow(
            id=row.id,
            issue_id=row.issue_id,
            subscriber_id=row.subscriber_id,
            email=row.email,
            name=row.name,
            attempts=row.attempts,
            uncertain=bool(row.uncertain),
            message_key=row.message_key,
            token_key=row.token_key or "",
        )
        for row in rows
        if row.state == SENDING
    ]
    claimed.sort(key=lambda row: row.id)
    return claimed


def release(engine: Engine, ids: Sequence[int], *, worker: str, uncertain: bool = False) -> int:
    """Hand claimed rows back to the queue untried (a stop) or possibly tried (`uncertain`)."""
    if not ids:
        return 0
    values: dict[str, Any] = {"state": QUEUED, "claimed_by": None, "claimed_at": None}
    if uncertain:
        values["uncertain"] = True
        values["detail"] = f"in flight at {worker} when its send raised"
    with engine.begin() as conn:
        result = conn.execute(
            update(deliveries)
            .where(
                deliveries.c.id.in_(list(ids)),
                deliveries.c.state == SENDING,
                deliveries.c.claimed_by == worker,
            )
            .values(**values)
        )
    return int(result.rowcount)


def record(
    engine: Engine,
    results: Iterable[SendResult],
    *,
    now: datetime,
    policy: RecordPolicy,
    worker: str | None = None,
    provider: str = "",
) -> dict[str, int]:
    """Write one batch of provider results in ONE transaction; returns counts per outcome.

    `sent` always lands (the message went out, whoever holds the row now). A temporary
    failure goes back to the queue after a backoff that honours the provider's
    Retry-After, until `policy.max_attempts`; a permanent one is `failed`, and when it
    says the address is dead the subscriber is suppressed (status `bounced` plus an
    event) in the same transaction, so no later issue is sent there. A result that may
    have been taken all the same (`maybe_sent`) marks its row uncertain.
    """
    by_id: dict[int, SendResult] = {}
    for result in results:
        if result.delivery_id is not None:
            by_id[result.delivery_id] = result
    counts = {"sent": 0, "retry": 0, "failed": 0, "suppressed": 0}
    if not by_id:
        return counts
    mine = [deliveries.c.state == SENDING]
    if worker is not None:
        mine.append(deliveries.c.claimed_by == worker)
    with engine.begin() as conn:
        # First statement writes: every row of the batch counts one attempt.
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(list(by_id)), *mine)
            .values(attempts=deliveries.c.attempts + 1)
        )
        sent = [r for r in by_id.values() if r.outcome is Outcome.SENT]
        if sent:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == bindparam("b_id"), deliveries.c.state != SENT)
                .values(
                    state=SENT,
                    sent_at=now,
                    provider_id=bindparam("b_provider_id"),
                    detail=bindparam("b_detail"),
                    claimed_by=None,
                    claimed_at=None,
                ),
                [
                    {"b_id": r.delivery_id, "b_provider_id": r.provider_id[:200], "b_detail": r.detail}
                    for r in sent
                ],
            )
            counts["sent"] = len(sent)
        unsent_ids = [i for i, r in by_id.items() if r.outcome is not Outcome.SENT]
        if not unsent_ids:
            return counts
        current = {
            row.id: row
            for row in conn.execute(
                select(deliveries.c.id, deliveries.c.attempts, deliveries.c.subscriber_id)
                .where(deliveries.c.id.in_(unsent_ids), *mine)
            )
        }
        retry_params: list[dict[str, Any]] = []
        failed_params: list[dict[str, Any]] = []
        bounced: list[tuple[int, SendResult]] = []
        for delivery_id, result in by_id.items():
            row = current.get(delivery_id)
            if row is None or result.outcome is Outcome.SENT:
                continue
            if result.outcome is Outcome.RETRY and row.attempts < policy.max_attempts:
                wait = policy.delay(row.attempts, result.retry_after)
                retry_params.append(
                    {
                        "b_id": delivery_id,
                        "b_not_before": now + timedelta(seconds=wait),
                        "b_detail": result.detail,
                        "b_uncertain": result.maybe_sent,
                    }
                )
                continue
            detail = result.detail
            if result.outcome is Outcome.RETRY:
                detail = f"gave up after {row.attempts} attempts: {detail}"
            elif policy.is_hard_bounce(result):
                bounced.append((row.subscriber_id, result))
            failed_params.append(
                {"b_id": delivery_id, "b_detail": detail, "b_uncertain": result.maybe_sent}
            )
        if retry_params:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == bindparam("b_id"))
                .values(
                    state=RETRY,
                    not_before=bindparam("b_not_before"),
                    detail=bindparam("b_detail"),
                    uncertain=_uncertain_or_maybe_sent(),
                    claimed_by=None,
                    claimed_at=None,
                ),
                retry_params,
            )
        if failed_params:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == bindparam("b_id"))
                .values(
                    state=FAILED,
                    detail=bindparam("b_detail"),
                    uncertain=_uncertain_or_maybe_sent(),
                    claimed_by=None,
                    claimed_at=None,
                ),
                failed_params,
            )
        for subscriber_id, result in bounced:
            changed = conn.execute(
                update(subscribers)
                .where(
                    subscribers.c.id == subscriber_id,
                    subscribers.c.status.in_(
                        [SubscriberStatus.ACTIVE.value, SubscriberStatus.PENDING.value]
                    ),
                )
                .values(status=SubscriberStatus.BOUNCED.value, updated_at=now)
            ).rowcount
            if changed:
                conn.execute(
                    insert(events).values(
                        subscriber_id=subscriber_id,
                        email=result.recipient,
                        kind="bounce",
                        provider=provider,
                        detail=result.detail,
                        created_at=now,
                    )
                )
                counts["suppressed"] += 1
        counts["retry"] = len(retry_params)
        counts["failed"] = len(failed_params)
    return counts


def _uncertain_or_maybe_sent() -> Any:
    """Keep a row's uncertain flag, and raise it for a result that may have been taken."""
    return or_(deliveries.c.uncertain, bindparam("b_uncertain", type_=Boolean))


DEFAULT_LEASE = timedelta(minutes=15)


def recover(engine: Engine, *, now: datetime, lease: timedelta = DEFAULT_LEASE) -> Recovered:
    """Put rows left `sending` by dead workers back in the queue, flagged `uncertain`.

    A worker is dead when it ran on this host and its process is gone, or when its claim
    is older than `lease` (the only sign available for workers on other hosts). Such a
    row may or may not have reached the provider before the worker died; it is sent
    again, and reported, never silently.
    """
    with engine.connect() as conn:
        workers = [
            name
            for (name,) in conn.execute(
                select(deliveries.c.claimed_by)
                .where(deliveries.c.state == SENDING, deliveries.c.claimed_by.is_not(None))
                .distinct()
            )
        ]
    dead = [name for name in workers if worker_is_dead(name)]
    stale = deliveries.c.claimed_at < now - lease
    gone = or_(stale, deliveries.c.claimed_by.in_(dead)) if dead else stale
    with engine.begin() as conn:
        # claimed_by stays: it tells who last held the row; claims overwrite it.
        rows = conn.execute(
            update(deliveries)
            .where(deliveries.c.state == SENDING, gone)
            .values(
                state=QUEUED,
                uncertain=True,
                detail="in flight when its worker stopped",
                claimed_at=None,
            )
            .returning(
                deliveries.c.id, deliveries.c.issue_id, deliveries.c.email, deliveries.c.claimed_by
            )
        ).all()
    found = (
        RecoveredRow(id=r.id, issue_id=r.issue_id, email=r.email, claimed_by=r.claimed_by or "")
        for r in rows
    )
    return Recovered(rows=tuple(sorted(found, key=lambda r: r.id)))


def count_due(engine: Engine, *, now: datetime) -> int:
    """Rows any sender could claim now (queued or retry, their time come), every issue."""
    query = select(func.count()).where(deliveries.c.state.in_(CLAIMABLE), deliveries.c.not_before <= now)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def next_due(engine: Engine, *, issue_id: int | None = None) -> datetime | None:
    """When the earliest waiting row (queued or retry) becomes claimable; None if none."""
    query = select(func.min(deliveries.c.not_before)).where(deliveries.c.state.in_(CLAIMABLE))
    if issue_id is not None:
        query = query.where(deliveries.c.issue_id == issue_id)
    with engine.connect() as conn:
        value = conn.execute(query).scalar()
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo("UTC"))
    return value


def finish_issues(engine: Engine, *, now: datetime) -> list[int]:
    """Mark `done` every sending issue with no row left to send; returns their ids."""
    unfinished = exists().where(
        deliveries.c.issue_id == issues.c.id,
        deliveries.c.state.in_([QUEUED, SENDING, RETRY]),
    )
    with engine.begin() as conn:
        rows = conn.execute(
            update(issues)
            .where(issues.c.status == "sending", ~unfinished)
            .values(status="done", finished_at=now)
            .returning(issues.c.id, issues.c.slug, issues.c.key)
        ).all()
        for row in rows:
            _announce_finished(conn, row.id, row.slug, row.key, now)
    return sorted(row.id for row in rows)


def _announce_finished(conn: Connection, issue_id: int, slug: str, key: str, now: datetime) -> None:
    """Queue `issue.sent` for a finished issue, and `issue.failed` too when copies failed."""
    counted: dict[str, int] = {
        state: int(n)
        for state, n in conn.execute(
            select(deliveries.c.state, func.count())
            .where(deliveries.c.issue_id == issue_id)
            .group_by(deliveries.c.state)
        )
    }
    data: dict[str, object] = {"issue_id": issue_id, "slug": slug, "key": key,
            "sent": int(counted.get(SENT, 0)), "failed": int(counted.get(FAILED, 0))}
    outbox.emit(conn, "issue.sent", data, now=now)
    if data["failed"]:
        outbox.emit(conn, "issue.failed", data, now=now)


def cancel_queued(engine: Engine, issue_id: int, *, now: datetime) -> int:
    """Take back every row of the issue not yet claimed (queued or waiting to retry).

    The rows become `skipped` with a note, so they are counted and never sent; rows
    already in flight finish as they would. Returns the number of rows taken back.
    """
    get_issue(engine, issue_id)  # NotFound for an unknown issue
    with engine.begin() as conn:
        result = conn.execute(
            update(deliveries)
            .where(deliveries.c.issue_id == issue_id, deliveries.c.state.in_([QUEUED, RETRY]))
            .values(state=SKIPPED, detail="cancelled by the author", claimed_at=now)
        )
    return int(result.rowcount or 0)
