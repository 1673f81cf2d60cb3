"""Recovery after a crash, and what is due: rows a dead worker held go back to the queue as uncertain.

`recover` returns rows in `sending` whose worker is dead (or whose lease ran out) to
`queued` with `uncertain` set, because the provider may have taken them already; the
caller reports them. `finish_issues` marks an issue sent once no row of it is waiting.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, exists, func, or_, select, update

from publisher.store import outbox
from publisher.store.ledger.rows import (
    CLAIMABLE,
    FAILED,
    HELD,
    QUEUED,
    RETRY,
    SENDING,
    SENT,
    Recovered,
    RecoveredRow,
    worker_is_dead,
)
from publisher.store.schema import deliveries, issues

__all__ = ["DEFAULT_LEASE", "count_due", "finish_issues", "next_due", "recover"]


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
        deliveries.c.state.in_([QUEUED, SENDING, RETRY, HELD]),
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
