"""Issues as the ledger keeps them: the snapshot a send delivers, and its delivery counts.

An issue row is written once per key (an article id or `digest:<date>`) with the HTML and
text rendered at that moment. Until a copy of it leaves, a newer rendering may replace the
snapshot (`refresh_issue`: a scheduled send renders the article as it is when the send
starts). From the first copy on, the issue is frozen: every recipient, this send's and any
later one's, a retry's or a resume's, gets the bytes the first one got, whatever happens
to the article afterwards.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Integer, Select, bindparam, exists, func, insert, or_, select, true, update
from sqlalchemy.exc import IntegrityError

from publisher.errors import NotFound
from publisher.models import IssueStatus
from publisher.numbers import plain_int
from publisher.store.counts_kept import kept_on
from publisher.store.engine import begin_write, reader
from publisher.store.folding import now_and_then
from publisher.store.schema import deliveries, issue_count_changes, issue_counts, issues

__all__ = [
    "DeferredReason",
    "FailedDelivery",
    "IssueSnapshot",
    "IssueStatus",
    "create_issue",
    "deferred_reasons",
    "failure_reasons",
    "failures",
    "find_issue",
    "fold_issue_counts",
    "get_issue",
    "is_frozen",
    "refresh_issue",
    "status",
]


@dataclass(frozen=True, slots=True)
class IssueSnapshot:
    """An issue as rendered when the send began; later edits to the article do not touch it."""

    id: int
    key: str
    kind: str
    slug: str
    subject: str
    html: str
    text: str
    tag: str | None
    status: str
    created_at: datetime
    enqueued_at: datetime | None
    finished_at: datetime | None
    topics: tuple[str, ...] = ()
    """The article's public tags: readers who chose topics get it only if one matches."""


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    """A recipient whose copy failed for good, or waits for another try, and why."""

    email: str
    state: str
    """`failed` or `retry`."""
    attempts: int
    reason: str
    """The provider's answer (or the reason it was never tried), as recorded."""
    next_try: datetime | None
    """When a `retry` row goes again; None for a failed one."""


_UNSENT = ("failed", "retry")


def failures(engine: Engine, issue_id: int, *, limit: int | None = None) -> list[FailedDelivery]:
    """The issue's failed rows, then its retrying ones, each by address; the first `limit`
    of them when a page shows no more."""
    with reader(engine) as conn:
        return [
            FailedDelivery(
                email=row.email, state=row.state, attempts=row.attempts, reason=row.detail,
                next_try=row.not_before if row.state == "retry" else None,
            )
            for row in conn.execute(_failures_query(limit is not None), {"issue_id": issue_id, "limit": limit})
        ]


# The statements an issue's report and Home read on every request are built once (per
# dialect where they read kept counts), their values bound at each call: building and
# keying a statement cost several times what running it on a few rows does.


@functools.cache
def _failures_query(limited: bool) -> Select[Any]:
    query = (
        select(deliveries.c.email, deliveries.c.state, deliveries.c.attempts,
               deliveries.c.detail, deliveries.c.not_before)
        .where(deliveries.c.issue_id == bindparam("issue_id"), deliveries.c.state.in_(_UNSENT))
        .order_by(deliveries.c.state, deliveries.c.email)
    )
    return query.limit(bindparam("limit", type_=Integer)) if limited else query


def failure_reasons(engine: Engine, issue_id: int, *, top: int = 3) -> list[tuple[str, int]]:
    """The most common reasons among the failed and retrying rows, with how many each.

    Providers often name the recipient in their answer; the address is taken out of the
    reason, so that one cause is counted once, not once per reader.
    """
    reason = func.replace(deliveries.c.detail, deliveries.c.email, "…").label("reason")
    query = (
        select(reason, func.count().label("n"))
        .where(deliveries.c.issue_id == issue_id, deliveries.c.state.in_(_UNSENT))
        .group_by(reason)
        .order_by(func.count().desc(), reason)
        .limit(top)
    )
    with engine.connect() as conn:
        return [(str(row.reason) or "no reason recorded", int(row.n)) for row in conn.execute(query)]


@dataclass(frozen=True, slots=True)
class DeferredReason:
    """One reason the provider gave for copies waiting on another try: how many, and the
    first addresses (by address) that got it."""

    reason: str
    count: int
    addresses: tuple[str, ...]


def deferred_reasons(engine: Engine, issue_id: int, *, addresses: int) -> list[DeferredReason]:
    """The reasons of the issue's retrying rows, commonest first, each with its exact count
    and at most `addresses` of its addresses (none with 0).

    Grouped by the database, the address taken out of each reason as `failure_reasons`
    does: after an outage that deferred half a million copies the page still reads a few
    hundred rows, not every one.
    """
    totals: dict[str, int] = {}
    shown: dict[str, list[str]] = {}
    with reader(engine) as conn:
        for row in conn.execute(_deferred_query(), {"issue_id": issue_id, "place": max(addresses, 1)}):
            totals[str(row.reason)] = int(row.total)
            if addresses > 0:
                shown.setdefault(str(row.reason), []).append(row.email)
    return [DeferredReason(why or "no reason recorded", total, tuple(shown.get(why, ())))
            for why, total in totals.items()]


@functools.cache
def _deferred_query() -> Select[Any]:
    reason = func.replace(deliveries.c.detail, deliveries.c.email, "…")
    ranked = (
        select(
            reason.label("reason"), deliveries.c.email,
            func.count().over(partition_by=reason).label("total"),
            func.row_number().over(partition_by=reason, order_by=deliveries.c.email).label("place"),
        )
        .where(deliveries.c.issue_id == bindparam("issue_id"), deliveries.c.state == "retry")
        .subquery()
    )
    return (
        select(ranked.c.reason, ranked.c.total, ranked.c.email)
        .where(ranked.c.place <= bindparam("place", type_=Integer))
        .order_by(ranked.c.total.desc(), ranked.c.reason, ranked.c.email)
    )


def _snapshot(row: Any) -> IssueSnapshot:
    return IssueSnapshot(
        id=row.id,
        key=row.key,
        kind=row.kind,
        slug=row.slug,
        subject=row.subject,
        html=row.html,
        text=row.text,
        tag=row.tag,
        status=row.status,
        created_at=row.created_at,
        enqueued_at=row.enqueued_at,
        finished_at=row.finished_at,
        topics=tuple(t for t in (row.topics or "").split(",") if t),
    )


def create_issue(
    engine: Engine,
    *,
    key: str,
    kind: str,
    slug: str,
    subject: str,
    html: str,
    text: str,
    tag: str | None,
    status: str,
    now: datetime,
    topics: tuple[str, ...] = (),
) -> int:
    """Snapshot a rendered issue and return its id; an existing key keeps its first snapshot.

    The snapshot is what every remaining recipient gets, so an edit to the article in the
    middle of a send changes nothing, and sending the same article again reuses the row.
    """
    existing = find_issue(engine, key)
    if existing is not None:
        return existing.id
    try:
        with engine.begin() as conn:
            result = conn.execute(
                insert(issues).values(
                    key=key,
                    kind=str(kind),
                    slug=slug,
                    subject=subject,
                    html=html,
                    text=text,
                    tag=tag,
                    status=status,
                    created_at=now,
                    topics=",".join(topics) or None,
                )
            )
            primary_key = result.inserted_primary_key
            assert primary_key is not None
            return int(primary_key[0])
    except IntegrityError:
        # Another process created it between our look and our insert.
        again = find_issue(engine, key)
        if again is None:
            raise
        return again.id


def _copy_left(issue_id: int) -> Any:
    """Some copy of the issue has left, or may have: a row sent, in flight, tried or uncertain."""
    return exists().where(
        deliveries.c.issue_id == issue_id,
        or_(
            deliveries.c.state.in_(("sending", "sent")),
            deliveries.c.attempts > 0,
            deliveries.c.uncertain == true(),
        ),
    )


def is_frozen(engine: Engine, issue_id: int) -> bool:
    """Whether a copy of the issue has left (or may have), so its snapshot is final."""
    with engine.connect() as conn:
        return bool(conn.execute(select(_copy_left(issue_id))).scalar())


def refresh_issue(engine: Engine, issue_id: int, *, subject: str, html: str, text: str) -> bool:
    """Replace the snapshot with a newer rendering, unless the issue is frozen.

    A copy claimed before the change keeps the issue as it is. The issue row is locked
    first, so the check sees every claim committed until then; a sender that claimed
    later reads the snapshot (`get_issue(to_send=True)`) only after this commits, and
    sends the new version like everyone after it. (On SQLite the transaction holds the one
    write lock from its start instead.) True when the snapshot was replaced.
    """
    with begin_write(engine) as conn:
        conn.execute(select(issues.c.id).where(issues.c.id == issue_id).with_for_update())
        changed = conn.execute(
            update(issues)
            .where(issues.c.id == issue_id, ~_copy_left(issue_id))
            .values(subject=subject, html=html, text=text)
        ).rowcount
    return bool(changed)


def find_issue(engine: Engine, key: str) -> IssueSnapshot | None:
    with engine.connect() as conn:
        row = conn.execute(select(issues).where(issues.c.key == key)).first()
    return _snapshot(row) if row is not None else None


def issue_states(engine: Engine) -> dict[str, tuple[int, str]]:
    """Every issue's id and status by its key, in one statement: a list of thousands of
    articles finds each one's issue here, not with a query apiece."""
    with engine.connect() as conn:
        rows = conn.execute(select(issues.c.key, issues.c.id, issues.c.status)).all()
    return {row.key: (int(row.id), str(row.status)) for row in rows}


def get_issue(engine: Engine, issue_id: int, *, to_send: bool = False) -> IssueSnapshot:
    """The issue as stored. `to_send`: read by a sender after its claim, waiting out a
    `refresh_issue` in progress (see there), so it never sends a version that is being
    replaced."""
    query = select(issues).where(issues.c.id == issue_id)
    if to_send:
        query = query.with_for_update(read=True)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"issue {issue_id} does not exist; `publisher status` lists the issues")
    return _snapshot(row)


def fold_issue_counts(engine: Engine) -> None:
    """Move the committed lines of `issue_count_changes` into `issue_counts` (PostgreSQL;
    nothing on SQLite, whose triggers update the counts in place). Skipped, without
    waiting, while another fold runs in any process."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(select(func.fold_issue_counts()))


def status(engine: Engine, issue: int | str | None = None, *, limit: int | None = None) -> list[IssueStatus]:
    """Counts per issue, newest first. `issue` is an id, a slug or a key; `limit` keeps the
    newest that many.

    The counts are read from `issue_counts`, which the database keeps in the transaction of
    every change to a copy (migration 0031): a few rows per issue, whether it went to a
    hundred readers or a million, exact in the reader's snapshot."""
    values: dict[str, Any] = {"id": None, "name": None, "limit": limit}
    by = ""
    if isinstance(issue, int) or (isinstance(issue, str) and plain_int(issue) is not None):
        by, values["id"] = "id", int(issue)
    elif issue is not None:
        by, values["name"] = "name", issue
    now_and_then(engine, fold_issue_counts)
    with reader(engine) as conn:
        found = conn.execute(_issues_query(by, limit is not None), values).all()
        if issue is not None and not found:
            raise NotFound(
                f"no issue {issue!r}: give an issue id, slug or key; `publisher status` lists them"
            )
        ids = [row.id for row in found]
        counts: dict[int, dict[str, int]] = {i: {} for i in ids}
        if ids:
            for issue_id, state, number in conn.execute(_counts_query(engine.dialect.name), {"ids": ids}):
                counts[issue_id][state] = int(number)
    return [
        IssueStatus(
            issue_id=row.id,
            key=row.key,
            slug=row.slug,
            subject=row.subject,
            status=row.status,
            created_at=row.created_at,
            queued=counts[row.id].get("queued", 0),
            sending=counts[row.id].get("sending", 0),
            sent=counts[row.id].get("sent", 0),
            retrying=counts[row.id].get("retry", 0),
            failed=counts[row.id].get("failed", 0),
            skipped=counts[row.id].get("skipped", 0),
            uncertain=counts[row.id].get("uncertain", 0),
        )
        for row in found
    ]


@functools.cache
def _issues_query(by: str, limited: bool) -> Select[Any]:
    """`status`'s issues: all of them (`by` ""), one by id ("id") or by slug or key ("name")."""
    query = select(issues.c.id, issues.c.key, issues.c.slug, issues.c.subject,
                   issues.c.status, issues.c.created_at)
    if by == "id":
        query = query.where(issues.c.id == bindparam("id", type_=Integer))
    elif by == "name":
        query = query.where(or_(issues.c.slug == bindparam("name"), issues.c.key == bindparam("name")))
    query = query.order_by(issues.c.id.desc())
    return query.limit(bindparam("limit", type_=Integer)) if limited else query


@functools.cache
def _counts_query(dialect: str) -> Select[Any]:
    table = kept_on(dialect, issue_counts, issue_count_changes)
    return select(table.c.issue_id, table.c.state, table.c.number).where(
        table.c.issue_id.in_(bindparam("ids", expanding=True))
    )
